//! The `/etc/resolv.conf` of instances with egress, in either mode: the host's, without
//! loopback nameservers (an instance's 127.0.0.1 is its own).

/// The `/etc/resolv.conf` an instance with egress should see (for backends that give instances
/// their own, such as containers): the host's, without loopback nameservers, which cannot work
/// from the namespace (its 127.0.0.1 is its own and the gateway is not mapped to the host).
/// Process instances already see the host's file; its non-loopback nameservers are reached
/// through pasta like any other UDP destination. On a host whose only nameserver is a local
/// stub (systemd-resolved), the stub's upstream list is used instead.
pub fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let usable = resolv_conf_from(&host);
    if usable.lines().any(|l| l.starts_with("nameserver")) {
        return usable;
    }
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default();
    resolv_conf_from(&upstream)
}

/// `host` (a resolv.conf text) with comments and loopback nameservers removed.
pub fn resolv_conf_from(host: &str) -> String {
    let mut out = String::new();
    for line in host.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let keep = match words.next() {
            Some("nameserver") => words
                .next()
                .and_then(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
                .is_some_and(|a| !a.is_loopback() && !a.is_unspecified()),
            Some("search" | "domain" | "options" | "sortlist") => true,
            _ => false,
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_nameservers_and_comments() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver ::1\nnameserver fe80::1%eth0\nsearch example.org\n\
                    options edns0 trust-ad\nnameserver bogus\n";
        assert_eq!(
            resolv_conf_from(host),
            "nameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch example.org\n\
             options edns0 trust-ad\n"
        );
        assert_eq!(resolv_conf_from("nameserver 127.0.0.1\n"), "");
    }
}
