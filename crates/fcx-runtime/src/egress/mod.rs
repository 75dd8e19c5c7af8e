//! Outbound networking (egress) of instances with `internetAccess`, in one of two modes:
//!
//! - `veth` (the default where it can run): a veth pair per instance, made straight into its
//!   namespace with a /32 address from a block the server leases, routed (no bridge) and
//!   masqueraded by the kernel; fcx's own nftables table keeps every instance away from the
//!   host's addresses, from other instances and from the link-local range, and lets nothing
//!   connect in ([`network`], [`veth`]). Costs no process and ~100 kB of kernel memory per
//!   instance; a few namespaces are kept made with their egress ahead of demand ([`pool`]).
//! - `pasta`: one `pasta` process per instance (~29 MB each), for hosts without nftables
//!   ([`pasta`]), guarded by the same kind of table where nftables exists.
//!
//! The server picks the mode once at start ([`start`], which also reaps what an earlier run
//! of the same server left) and installs it for the backends, which only call
//! [`PendingEgress::with_namespace`] and [`PendingEgress::ready`]: the namespace comes with
//! its egress from the pool, or egress is set up while the instance's process starts; the
//! instance is ready only with both.

pub(crate) mod netlink;
pub mod network;
pub mod pasta;
mod pool;
mod resolv;
mod veth;

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;

pub use ipnet::Ipv4Net;
pub use network::{VethNetwork, VethSettings, DEFAULT_RANGE, STATE_DIR};
pub use pasta::{PastaGuard, PASTA};
pub use resolv::{resolv_conf, resolv_conf_from};

/// How instances get outbound networking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A veth pair per instance namespace, routed and masqueraded by fcx's nftables table.
    Veth,
    /// A `pasta` process per instance (user-mode networking).
    Pasta,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Veth => "veth",
            Mode::Pasta => "pasta",
        })
    }
}

/// What `--egress` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// veth where the host can run it, else pasta.
    Auto,
    /// veth, or the server refuses to start.
    Veth,
    /// pasta, even where veth could run.
    Pasta,
}

impl std::fmt::Display for Requested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Requested::Auto => "auto",
            Requested::Veth => "veth",
            Requested::Pasta => "pasta",
        })
    }
}

impl std::str::FromStr for Requested {
    type Err = String;

    fn from_str(s: &str) -> Result<Requested, String> {
        match s {
            "auto" => Ok(Requested::Auto),
            "veth" => Ok(Requested::Veth),
            "pasta" => Ok(Requested::Pasta),
            other => Err(format!(
                "unknown egress mode '{other}': use auto, veth or pasta"
            )),
        }
    }
}

/// How a server sets up egress.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The mode `--egress` asks for.
    pub requested: Requested,
    /// Used by veth egress (its prefix also names pasta's guard table and cgroup).
    pub veth: VethSettings,
    /// Namespaces with veth egress kept made ahead of demand (veth mode).
    pub pool: usize,
}

/// What the backends use, installed by [`start`].
#[derive(Clone)]
enum Provider {
    Veth(Arc<VethNetwork>, Arc<pool::Pool>),
    /// pasta, joining this `cgroup.procs` (the guarded cgroup) when set.
    Pasta(Option<CString>),
}

static PROVIDER: RwLock<Option<Provider>> = RwLock::new(None);

/// Without [`start`] (unit tests, tools), instances get unguarded pasta.
fn provider() -> Provider {
    PROVIDER
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or(Provider::Pasta(None))
}

/// The egress a server runs with. [`Active::shutdown`] removes what it made on the host.
pub struct Active {
    mode: Mode,
    reason: String,
    prefix: String,
    veth: Option<Arc<VethNetwork>>,
    pool: Option<Arc<pool::Pool>>,
    guard: Option<PastaGuard>,
    removed: std::sync::atomic::AtomicBool,
}

/// Picks and sets up the server's egress, after removing what an earlier run of the same
/// server left (links, table, lease, in either mode), and installs it for the backends.
/// `Err` only when the mode asked for explicitly cannot run.
pub fn start(s: &Settings) -> Result<Active, String> {
    let nft = network::nft_binary().ok();
    network::reap_prefix(&s.veth.prefix, nft.as_deref());
    let active = match s.requested {
        Requested::Veth => veth(s, "--egress veth".into()).map_err(|e| {
            format!("--egress veth cannot run on this host: {e}. Run `fcx doctor`, or start with --egress pasta")
        })?,
        Requested::Pasta => pasta(s, "--egress pasta".into()),
        Requested::Auto => match veth(s, "the default where it can run".into()) {
            Ok(active) => active,
            Err(e) => pasta(s, format!("veth egress cannot run here: {e}")),
        },
    };
    let provider = match (&active.veth, &active.pool, &active.guard) {
        (Some(net), Some(pool), _) => Provider::Veth(Arc::clone(net), Arc::clone(pool)),
        (_, _, guard) => Provider::Pasta(guard.as_ref().map(PastaGuard::procs)),
    };
    *PROVIDER.write().unwrap_or_else(|p| p.into_inner()) = Some(provider);
    Ok(active)
}

fn veth(s: &Settings, reason: String) -> Result<Active, String> {
    let net = Arc::new(VethNetwork::setup(&s.veth)?);
    let pool = Arc::new(pool::Pool::start(Arc::clone(&net), s.pool));
    Ok(Active {
        mode: Mode::Veth,
        reason,
        prefix: s.veth.prefix.clone(),
        veth: Some(net),
        pool: Some(pool),
        guard: None,
        removed: Default::default(),
    })
}

fn pasta(s: &Settings, reason: String) -> Active {
    let guard = match PastaGuard::setup(&s.veth.prefix) {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!(
                "egress: pasta runs unguarded, so instances can reach the host's non-loopback \
                 addresses and the link-local range: {e}"
            );
            None
        }
    };
    Active {
        mode: Mode::Pasta,
        reason,
        prefix: s.veth.prefix.clone(),
        veth: None,
        pool: None,
        guard,
        removed: Default::default(),
    }
}

impl Active {
    /// The mode this server runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Why this mode: the flag, or why veth could not run.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// One line for the log: the mode, why, and what it holds on the host.
    pub fn describe(&self) -> String {
        match (&self.veth, &self.guard) {
            (Some(net), _) => {
                let uplinks = if net.enabled_uplinks().is_empty() {
                    "no uplink forwarding changed".to_string()
                } else {
                    format!(
                        "forwarding on for {} (net.ipv4.conf.<if>.forwarding; ip_forward untouched)",
                        net.enabled_uplinks().join(", ")
                    )
                };
                format!(
                    "veth ({}): block {}, links {}*, nftables table inet {}, {uplinks}",
                    self.reason,
                    net.block(),
                    network::link_prefix(net.prefix()),
                    network::table_name(net.prefix()),
                )
            }
            (None, Some(_)) => format!(
                "pasta ({}): one pasta per instance, guarded by nftables table inet {}",
                self.reason,
                network::table_name(&self.prefix)
            ),
            (None, None) => format!("pasta ({}), unguarded (no nftables)", self.reason),
        }
    }

    /// Uninstalls the provider and removes links, table, lease and cgroup (clean stop, after
    /// the instances stopped). Dropping does it too, once.
    pub fn shutdown(&self) {
        if self.removed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        *PROVIDER.write().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(pool) = &self.pool {
            pool.stop();
        }
        if let Some(net) = &self.veth {
            net.remove();
        }
        if let Some(guard) = &self.guard {
            guard.remove();
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An instance's outbound networking. Dropping it ends it (pasta is killed; a veth lease
/// returns its address; the pair itself goes with the namespace).
pub struct Egress(Inner);

enum Inner {
    Pasta(pasta::Pasta),
    Veth(veth::VethLink),
}

impl Egress {
    /// The pasta process serving the instance (pasta mode).
    pub fn pasta_pid(&self) -> Option<u32> {
        match &self.0 {
            Inner::Pasta(p) => Some(p.pid()),
            Inner::Veth(_) => None,
        }
    }

    /// The instance's own address (veth mode).
    pub fn address(&self) -> Option<Ipv4Addr> {
        match &self.0 {
            Inner::Veth(v) => Some(v.address()),
            Inner::Pasta(_) => None,
        }
    }
}

/// An instance's egress being set up (`None`: no `internetAccess`): it runs beside the
/// instance's start; the instance is ready only with both.
pub(crate) struct PendingEgress(Option<oneshot::Receiver<io::Result<Egress>>>);

impl PendingEgress {
    /// A namespace for instance `name` and its egress: a pre-made one when the pool has one
    /// (nothing left to do on the request path), else a new namespace with its egress set
    /// up meanwhile ([`PendingEgress::start`]).
    pub(crate) fn with_namespace(
        name: &str,
        wanted: bool,
    ) -> io::Result<(crate::netns::NetNs, PendingEgress)> {
        PendingEgress::namespace_from(name, wanted, crate::netns::NetNs::create)
    }

    /// As [`PendingEgress::with_namespace`], for a snapshot restore: with `internetAccess`
    /// a pre-made namespace with its veth egress when there is one, else (and without
    /// `internetAccess`) one from `plain`, the backend's pool of bare namespaces, its egress
    /// set up while CRIU restores.
    pub(crate) fn with_pooled_namespace(
        plain: &crate::netns::NetNsPool,
        name: &str,
        wanted: bool,
    ) -> io::Result<(crate::netns::NetNs, PendingEgress)> {
        PendingEgress::namespace_from(name, wanted, |name| plain.take(name))
    }

    fn namespace_from(
        name: &str,
        wanted: bool,
        make: impl FnOnce(&str) -> io::Result<crate::netns::NetNs>,
    ) -> io::Result<(crate::netns::NetNs, PendingEgress)> {
        if wanted {
            if let Provider::Veth(_, pool) = provider() {
                if let Some((netns, link)) = pool.take() {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Ok(Egress(Inner::Veth(link))));
                    return Ok((netns, PendingEgress(Some(rx))));
                }
            }
        }
        let netns = make(name)?;
        let egress = PendingEgress::start(&netns, name, wanted);
        Ok((netns, egress))
    }

    pub(crate) fn start(netns: &crate::netns::NetNs, name: &str, wanted: bool) -> PendingEgress {
        if !wanted {
            return PendingEgress(None);
        }
        let (tx, rx) = oneshot::channel();
        match provider() {
            Provider::Pasta(cgroup) => {
                let (path, name) = (netns.path(), name.to_owned());
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(
                        pasta::Pasta::attach(&path, &name, cgroup).map(|p| Egress(Inner::Pasta(p))),
                    );
                });
            }
            Provider::Veth(net, _) => {
                let fd = match netns.fd().try_clone_to_owned() {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return PendingEgress(Some(rx));
                    }
                };
                // Its own thread: it joins the namespace to configure the inside end.
                let thread = std::thread::Builder::new()
                    .name(format!("egress-{name}"))
                    .stack_size(128 * 1024);
                let spawned = crate::sys::spawn_namespace_thread(thread, move |own| {
                    let _ = tx.send(veth::attach(own, &net, fd).map(|v| Egress(Inner::Veth(v))));
                });
                if let Err(e) = spawned {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Err(e));
                    return PendingEgress(Some(rx));
                }
            }
        }
        PendingEgress(Some(rx))
    }

    pub(crate) async fn ready(self) -> io::Result<Option<Egress>> {
        match self.0 {
            None => Ok(None),
            Some(rx) => rx
                .await
                .map_err(|_| io::Error::other("the egress set-up ended without an answer"))?
                .map(Some),
        }
    }
}

#[cfg(test)]
mod tests;
