//! One instance's veth egress: a veth pair made straight into its namespace (host end
//! `fcx<8 hex><slot>`, namespace end `eth0`), point-to-point addresses (the instance's
//! `block + slot` on `eth0`, the block's gateway on the host end, a /32 route each way), and
//! a default route via the gateway. About a millisecond of netlink requests, done while the
//! instance's process starts.
//!
//! Made straight into the namespace, not moved there from a pool: moving a link between
//! namespaces waits for an RCU grace period (~25 ms measured here), creating one in place
//! takes ~0.7 ms. The link goes away with the namespace (the kernel deletes both ends), so
//! ending an instance costs nothing here; its slot returns to the back of the free queue.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use super::netlink::Rtnl;
use super::network::VethNetwork;

/// The name of the instance's end, inside its namespace.
const INSIDE: &str = "eth0";

/// How many lingering links (of instances whose namespace is still being torn down) a
/// lease may skip before giving up.
const SKIP_LIMIT: usize = 64;

/// An instance's lease of one slot, and so of one address and host-side link name.
pub(crate) struct VethLink {
    net: Arc<VethNetwork>,
    slot: u32,
}

impl VethLink {
    pub(crate) fn address(&self) -> std::net::Ipv4Addr {
        self.net.address(self.slot)
    }
}

impl Drop for VethLink {
    fn drop(&mut self) {
        // The pair is deleted by the kernel with the namespace; if it lingers, the next
        // lease of this slot sees EEXIST and takes another.
        self.net.put_back(self.slot);
    }
}

/// Gives the namespace `netns` its veth. Runs on a thread of its own: it joins the
/// namespace to configure its end.
pub(crate) fn attach(
    own: &crate::sys::OwnThread,
    net: &Arc<VethNetwork>,
    netns: OwnedFd,
) -> io::Result<VethLink> {
    let mut host = Rtnl::open()?;
    let mut skipped = 0;
    let link = loop {
        let slot = net.take_slot().ok_or_else(|| {
            io::Error::other(format!(
                "egress addresses of {} exhausted: every slot is leased (raise --max-instances \
                 for a larger block, or give fewer instances internetAccess)",
                net.block()
            ))
        })?;
        let link = VethLink {
            net: Arc::clone(net),
            slot,
        };
        match host.add_veth(&net.link_name(slot), INSIDE, netns.as_fd()) {
            Ok(()) => break link,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && skipped < SKIP_LIMIT => {
                skipped += 1;
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create veth {}: {e}", net.link_name(slot)),
                ))
            }
        }
    };
    let name = net.link_name(link.slot);
    let (gateway, address) = (net.gateway(), link.address());
    let host_end = host.link_index(&name)?;
    let configured = (|| -> io::Result<()> {
        // No IPv6 on fcx's links: nothing routes it, and it would only add link-local chatter.
        sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")?;
        // Per-interface: what enters here may be forwarded; `ip_forward` stays as it is.
        sysctl(&format!("net/ipv4/conf/{name}/forwarding"), "1")?;
        host.add_peer_address(host_end, gateway, address)?;
        host.set_up(host_end)?;
        // This thread is the attach's own: it may stay in the namespace.
        crate::sys::setns_net(own, netns.as_raw_fd())?;
        sysctl(&format!("net/ipv6/conf/{INSIDE}/disable_ipv6"), "1")?;
        let mut inside = Rtnl::open()?;
        let end = inside.link_index(INSIDE)?;
        inside.add_peer_address(end, address, gateway)?;
        inside.set_up(end)?;
        inside.add_default_route(end, gateway)
    })();
    if let Err(e) = configured {
        let _ = host.delete_link(host_end);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot configure veth {name} ({address} via {gateway}): {e}"),
        ));
    }
    Ok(link)
}

/// Writes `/proc/sys/<key>` (in the calling thread's network namespace for `net/` keys).
fn sysctl(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{key}"), value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}")))
}
