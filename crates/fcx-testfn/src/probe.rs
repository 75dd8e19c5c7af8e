//! Network probes for egress tests: talk to a peer over TCP or UDP with short timeouts and
//! report what came back, so a test can tell "reached the real target" from "connected to
//! something".

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `addr` and reads what the peer sends first (up to 256 bytes or EOF).
pub fn tcp(addr: &str) -> String {
    let result = resolve(addr).and_then(|target| {
        let conn = TcpStream::connect_timeout(&target, TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        let mut buf = Vec::new();
        conn.take(256).read_to_end(&mut buf)?;
        Ok(buf)
    });
    report(result)
}

/// Sends `udp-probe` to `addr` and waits for one datagram back.
pub fn udp(addr: &str) -> String {
    let result = resolve(addr).and_then(|target| {
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse().unwrap_or(target)
        } else {
            "[::]:0".parse().unwrap_or(target)
        };
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(TIMEOUT))?;
        sock.connect(target)?;
        sock.send(b"udp-probe")?;
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    });
    report(result)
}

/// The local address a connected UDP socket to `addr` gets (routing picks it; nothing is
/// sent).
pub fn source(addr: &str) -> String {
    let result = resolve(addr).and_then(|target| {
        let bind = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(bind)?;
        sock.connect(target)?;
        Ok(sock.local_addr()?.ip().to_string())
    });
    match result {
        Ok(ip) => ip,
        Err(e) => format!("error: {e}"),
    }
}

fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to nothing"),
        )
    })
}

fn report(result: std::io::Result<Vec<u8>>) -> String {
    match result {
        Ok(bytes) => format!("got: {}", String::from_utf8_lossy(&bytes)),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tcp_reports_the_greeting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"hello\n").unwrap();
        });
        assert_eq!(tcp(&addr.to_string()), "got: hello\n");
        server.join().unwrap();
    }

    #[test]
    fn udp_reports_the_echo_and_errors_are_text() {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], from).unwrap();
        });
        assert_eq!(udp(&addr.to_string()), "got: udp-probe");
        server.join().unwrap();
        assert!(tcp("not an address").starts_with("error: "));
        assert_eq!(source("127.0.0.1:9"), "127.0.0.1");
    }
}
