//! Log markers fcx writes around each call into an instance's log.

/// The line written before an invocation's output.
pub fn invoke_start(request_id: &str) -> String {
    format!("FC Invoke Start RequestId: {request_id}")
}

/// The line written after an invocation's output.
pub fn invoke_end(request_id: &str) -> String {
    format!("FC Invoke End RequestId: {request_id}")
}

/// The line written before the initializer's output.
pub fn initialize_start(request_id: &str) -> String {
    format!("FC Initialize Start RequestId: {request_id}")
}

/// The line written after the initializer's output.
pub fn initialize_end(request_id: &str) -> String {
    format!("FC Initialize End RequestId: {request_id}")
}

/// The last `max` bytes of `log`, cut at a UTF-8 boundary so the tail stays valid text.
pub fn tail(log: &[u8], max: usize) -> &[u8] {
    if log.len() <= max {
        return log;
    }
    let mut start = log.len() - max;
    // Skip continuation bytes so the tail does not start in the middle of a character.
    while start < log.len() && (log[start] & 0xC0) == 0x80 {
        start += 1;
    }
    &log[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_have_fc_format() {
        assert_eq!(invoke_start("r1"), "FC Invoke Start RequestId: r1");
        assert_eq!(invoke_end("r1"), "FC Invoke End RequestId: r1");
        assert_eq!(initialize_start("r1"), "FC Initialize Start RequestId: r1");
    }

    #[test]
    fn tail_keeps_last_bytes_on_char_boundary() {
        assert_eq!(tail(b"abcdef", 3), b"def");
        assert_eq!(tail(b"ab", 3), b"ab");
        let s = "aé".as_bytes(); // 'é' is two bytes
        assert_eq!(tail(s, 1), b"");
        assert_eq!(tail(s, 2), "é".as_bytes());
    }
}
