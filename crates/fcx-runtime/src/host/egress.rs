//! What outbound networking (`internetAccess`) needs on this host, for `fcx doctor`: which
//! egress mode a server would run and why, nftables (fcx's ruleset checked against the
//! kernel with `nft -c`), veth pairs (made in a throwaway namespace), and IP forwarding
//! (what fcx changes, exactly, and other tables that would drop forwarded traffic).

use std::os::fd::AsFd;
use std::process::Command;

use super::{Check, Need, Status};
use crate::egress::{network, Requested};

/// Which egress mode a server would run, and why.
pub const EGRESS: &str = "egress mode";
/// fcx's nftables ruleset loads (`nft -c`).
pub const NFTABLES: &str = "nftables";
/// veth pairs can be made.
pub const VETH: &str = "veth";
/// IP forwarding, and tables that would drop forwarded traffic.
pub const FORWARDING: &str = "ip forwarding";

/// The egress checks, `EGRESS` first (the mode a server started with `requested` would
/// run, and why).
pub fn check_egress(requested: Requested) -> Vec<Check> {
    let nft = check_nftables();
    let veth = check_veth();
    let forwarding = check_forwarding();
    let veth_ok = nft.status == Status::Ok && veth.status == Status::Ok;
    let mut mode = match requested {
        Requested::Pasta => Check::ok(
            EGRESS,
            "pasta (--egress pasta): one pasta process per instance (~29 MB each)",
        ),
        Requested::Veth | Requested::Auto if veth_ok => Check::ok(
            EGRESS,
            format!(
                "veth ({}): a veth pair per instance, routed and masqueraded by the kernel \
                 through fcx's own nftables table; no process per instance{}",
                if requested == Requested::Veth {
                    "--egress veth"
                } else {
                    "the default, and it can run here"
                },
                running_servers()
            ),
        ),
        Requested::Veth => Check::fail(
            EGRESS,
            "--egress veth cannot run here (see the nftables and veth checks)",
            "fix those, or start the server with --egress pasta",
        ),
        Requested::Auto => Check::new(
            EGRESS,
            Status::Warn,
            "pasta: veth egress cannot run here (see the nftables and veth checks), so each \
             instance with internetAccess gets a pasta process (~29 MB)",
        )
        .with_fix("apt-get install -y nftables (then servers use veth egress)"),
    };
    mode.need = Need::Egress;
    let mut checks = vec![mode, nft, veth, forwarding];
    if requested == Requested::Auto && !veth_ok {
        // The server runs anyway, with pasta: what veth lacks is advice, not a failure.
        for c in &mut checks[1..3] {
            if c.status == Status::Fail {
                c.status = Status::Warn;
            }
        }
    }
    for c in &mut checks {
        c.need = Need::Egress;
    }
    checks
}

/// The veth blocks leased by running servers, as `; running servers: …`.
fn running_servers() -> String {
    let leases: Vec<String> = std::fs::read_dir(network::STATE_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let block = name.strip_suffix(".lease")?.replacen('-', "/", 1);
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            Some(format!("{} ({block})", owner.trim()))
        })
        .collect();
    if leases.is_empty() {
        String::new()
    } else {
        format!("; servers holding blocks: {}", leases.join(", "))
    }
}

fn check_nftables() -> Check {
    let nft = match network::nft_binary() {
        Ok(nft) => nft,
        Err(_) => {
            return Check::fail(
                NFTABLES,
                "nft not found: veth egress loads its rules with it",
                "apt-get install -y nftables",
            )
        }
    };
    let version =
        super::probe::version_line(&nft, std::time::Duration::from_secs(5)).unwrap_or_default();
    if !crate::sys::is_root() {
        return Check::fail(
            NFTABLES,
            format!("{version}: loading rules needs root"),
            "run fcx as root",
        );
    }
    let block = "10.251.0.0/24".parse().expect("a valid block");
    let rules = network::ruleset("fcx-doctor", "fcxdoctor", block, &["lo".into()]);
    match network::nft_check(&nft, &rules) {
        Ok(()) => Check::ok(
            NFTABLES,
            format!(
                "{} ({version}): fcx's ruleset (masquerade, fib, reject) passes `nft -c` \
                 against this kernel",
                nft.display()
            ),
        ),
        Err(e) => Check::fail(
            NFTABLES,
            format!("fcx's ruleset does not load: {e}"),
            "use a kernel with nf_tables, nft_nat, nft_masq, nft_fib and nft_reject \
             (modprobe nf_tables nft_masq nft_fib_inet nft_reject_inet), or --egress pasta",
        ),
    }
}

fn check_veth() -> Check {
    match veth_probe() {
        Ok(()) => Check::ok(VETH, "made a veth pair in a throwaway network namespace"),
        Err(e) => Check::fail(
            VETH,
            format!("cannot make a veth pair: {e}"),
            "modprobe veth (a kernel with CONFIG_VETH), run fcx as root, or --egress pasta",
        ),
    }
}

fn veth_probe() -> Result<(), String> {
    crate::sys::spawn_namespace_thread(std::thread::Builder::new(), |own| -> Result<(), String> {
        // This thread's own namespace: it and the pair go when the thread ends.
        crate::sys::unshare_netns(own).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        let ns = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
        let mut rtnl = crate::egress::netlink::Rtnl::open().map_err(|e| e.to_string())?;
        rtnl.add_veth("fcxprobe0", "fcxprobe1", ns.as_fd())
            .map_err(|e| e.to_string())
    })
    .map_err(|e| format!("cannot start the probe thread: {e}"))?
    .join()
    .map_err(|_| "the probe thread panicked".to_string())?
}

fn check_forwarding() -> Check {
    let uplinks = network::uplinks();
    let global = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    if uplinks.is_empty() {
        return Check::new(
            FORWARDING,
            Status::Warn,
            "no IPv4 default route: instances with internetAccess reach nothing beyond the \
             host's own routes",
        )
        .with_fix("give the host a default route (ip route add default via <gateway>)");
    }
    let states: Vec<String> = uplinks
        .iter()
        .map(|d| {
            let on = network::forwarding(d) == Some(true);
            format!(
                "net.ipv4.conf.{d}.forwarding is {} ({})",
                u8::from(on),
                if on {
                    "fcx leaves it"
                } else {
                    "a veth server sets it to 1 while it runs and the last one restores 0"
                }
            )
        })
        .collect();
    let mut detail = format!(
        "veth egress forwards per interface: its own links get forwarding=1; {}; \
         net.ipv4.ip_forward stays {global}; no bridge, so br_netfilter does not matter",
        states.join("; ")
    );
    let droppers = forward_drop_chains();
    if droppers.is_empty() {
        return Check::ok(FORWARDING, detail);
    }
    detail.push_str(&format!(
        "; but forward chains with policy drop would drop instances' traffic: {}",
        droppers.join(", ")
    ));
    Check::new(FORWARDING, Status::Warn, detail).with_fix(
        "accept traffic from and to the fcx* links in those chains (e.g. Docker's: iptables \
         -I DOCKER-USER -i fcx+ -j ACCEPT; iptables -I DOCKER-USER -o fcx+ -m conntrack \
         --ctstate RELATED,ESTABLISHED -j ACCEPT), or --egress pasta",
    )
}

/// Chains of other tables hooked on forward with `policy drop` (`table … chain …`).
fn forward_drop_chains() -> Vec<String> {
    let Ok(nft) = network::nft_binary() else {
        return Vec::new();
    };
    let Ok(out) = Command::new(nft).args(["list", "chains"]).output() else {
        return Vec::new();
    };
    parse_drop_chains(&String::from_utf8_lossy(&out.stdout))
}

fn parse_drop_chains(text: &str) -> Vec<String> {
    let mut table = String::new();
    let mut out = Vec::new();
    let mut chain = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            table = rest.trim_end_matches(" {").to_owned();
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches(" {").to_owned();
        } else if line.contains("hook forward") && line.contains("policy drop") {
            out.push(format!("table {table} chain {chain}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_forward_chains_that_drop() {
        let text = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\
                    \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                    table inet fcx-1a2b3c4d {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n";
        assert_eq!(parse_drop_chains(text), ["table ip filter chain FORWARD"]);
    }

    #[test]
    fn egress_checks_name_the_mode_and_say_how_to_fix_failures() {
        for requested in [Requested::Auto, Requested::Veth, Requested::Pasta] {
            let checks = check_egress(requested);
            let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
            assert_eq!(names, [EGRESS, NFTABLES, VETH, FORWARDING]);
            for c in &checks {
                assert_eq!(c.need, Need::Egress);
                if c.status != Status::Ok {
                    assert!(c.fix.is_some(), "{c:?}");
                }
            }
        }
        if crate::sys::is_root() && network::nft_binary().is_ok() {
            let checks = check_egress(Requested::Auto);
            assert!(checks[0].detail.starts_with("veth"), "{:?}", checks[0]);
        }
    }
}
