//! Reads which TCP ports a process's network namespace listens on (`/proc/<pid>/net/tcp*`),
//! to tell "ready" from "listening on the wrong address or port".

use std::net::IpAddr;

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Bound address (`0.0.0.0`, `127.0.0.1`, `::`...).
    pub addr: IpAddr,
    /// Bound port.
    pub port: u16,
}

impl Listener {
    /// FC requires `0.0.0.0` (or `::`): a server bound to loopback only fails FC's ping.
    pub fn is_wildcard(&self) -> bool {
        self.addr.is_unspecified()
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Listening sockets in the network namespace of `pid` (empty if the process is gone).
pub fn listeners(pid: u32) -> Vec<Listener> {
    listeners_in(std::path::Path::new(&format!("/proc/{pid}")))
}

/// Listening sockets in the network namespace of the process or thread whose `/proc`
/// directory is `proc_dir` (e.g. `/proc/<pid>/task/<tid>`).
pub fn listeners_in(proc_dir: &std::path::Path) -> Vec<Listener> {
    let mut out = Vec::new();
    for file in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc_dir.join("net").join(file)) {
            out.extend(parse(&text));
        }
    }
    out
}

/// Parses the kernel's `/proc/net/tcp{,6}` table, keeping LISTEN (state 0A) rows.
pub fn parse(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let state = cols.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(Listener {
                addr: parse_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

/// Addresses are hex words in host byte order (little-endian on x86).
fn parse_addr(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => {
            let v = u32::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::from(v.to_ne_bytes()))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            Some(IpAddr::from(bytes))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:2328 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000 65534        0 3 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listeners_and_skips_connections() {
        let l = parse(TCP);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].to_string(), "0.0.0.0:9000");
        assert!(l[0].is_wildcard());
        assert_eq!(l[1].to_string(), "127.0.0.1:8080");
        assert!(!l[1].is_wildcard());
    }

    #[test]
    fn parses_ipv6_wildcard() {
        let l = parse(TCP6);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].to_string(), "[::]:9000");
        assert!(l[0].is_wildcard());
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse("header\nnot a row\n  0: zz:zz 0 0A").is_empty());
    }
}
