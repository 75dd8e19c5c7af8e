//! Namespaces with their veth egress made ahead of demand, so a cold start with
//! `internetAccess` takes one instead of making a namespace and a veth pair on the request
//! path. A thread of its own keeps `size` of them ready (refilled after each take); each
//! pooled namespace is held by its own [`NetNs`] thread, and its pair goes with it when the
//! pool is dropped (or fcx dies).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::network::VethNetwork;
use super::veth::{self, VethLink};
use crate::netns::NetNs;

struct State {
    ready: Vec<(NetNs, VethLink)>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The pool of one server.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    filler: Mutex<Option<JoinHandle<()>>>,
}

impl Pool {
    /// Starts the filler keeping `size` namespaces ready (none when `size` is 0).
    pub(crate) fn start(net: Arc<VethNetwork>, size: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let filler = (size > 0)
            .then(|| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("egress-pool".into())
                    .stack_size(256 * 1024)
                    .spawn(move || fill(&shared, &net, size))
                    .map_err(|e| tracing::warn!(error = %e, "egress: no pool filler"))
                    .ok()
            })
            .flatten();
        Pool {
            shared,
            filler: Mutex::new(filler),
        }
    }

    /// A ready namespace and its egress, if one is left.
    pub(crate) fn take(&self) -> Option<(NetNs, VethLink)> {
        let taken = self.lock().ready.pop();
        self.shared.wake.notify_one();
        taken
    }

    /// Stops the filler and drops what is ready (their pairs go with their namespaces).
    pub(crate) fn stop(&self) {
        let drained = {
            let mut state = self.lock();
            state.stop = true;
            std::mem::take(&mut state.ready)
        };
        self.shared.wake.notify_all();
        if let Some(t) = self.filler.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        drop(drained);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fill(shared: &Shared, net: &Arc<VethNetwork>, size: usize) {
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            while !state.stop && state.ready.len() >= size {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stop {
                return;
            }
        }
        match make(net) {
            Ok(entry) => {
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.stop {
                    return;
                }
                state.ready.push(entry);
            }
            Err(e) => {
                tracing::warn!(error = %e, "egress: cannot pre-create a namespace; retrying in 1 s");
                let state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                let _ = shared.wake.wait_timeout(state, Duration::from_secs(1));
            }
        }
    }
}

/// A namespace with its veth, made on a thread that joins it for the inside end.
fn make(net: &Arc<VethNetwork>) -> std::io::Result<(NetNs, VethLink)> {
    let netns = NetNs::create("pooled")?;
    let fd = netns.fd().try_clone_to_owned()?;
    let net = Arc::clone(net);
    let thread = std::thread::Builder::new()
        .name("egress-attach".into())
        .stack_size(128 * 1024);
    let link = crate::sys::spawn_namespace_thread(thread, move |own| veth::attach(own, &net, fd))?
        .join()
        .map_err(|_| std::io::Error::other("the attach thread panicked"))??;
    Ok((netns, link))
}
