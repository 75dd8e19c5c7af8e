//! The Linux scheduling policy instance processes run under (`fcx server
//! --instance-scheduling`).
//!
//! On one host the gateway and the instances it feeds share the CPUs. Under the default
//! policy, every request fcx writes into an instance wakes the instance's thread, and the
//! kernel often lets that woken thread preempt the serving thread at once (wakeup
//! preemption): the gateway is switched out in the middle of its batch of ready connections
//! and switched back in later, two context switches per request. `SCHED_BATCH` keeps the
//! instance's CPU share (same weight, same nice value) but does not let its wake-ups preempt
//! a running thread: the instance runs when the serving thread waits or its slice ends. In
//! one run of the warm-path bench that was 1.14× the throughput at 64 connections and 1.15×
//! at 1, with a lower p99 (docs/benchmarks.md, session 27). In FC each instance has CPUs of its own, so nothing an
//! instance can observe of FC's behaviour changes; `normal` is there for hosts where the
//! instances' own wake-up latency matters more than the gateway's throughput.

/// How instance processes are scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: an instance's wake-ups do not preempt the gateway (see the module doc).
    #[default]
    Batch,
    /// `SCHED_OTHER`, as every other process on the host.
    Normal,
}

impl std::str::FromStr for Scheduling {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheduling, String> {
        match s {
            "batch" => Ok(Scheduling::Batch),
            "normal" => Ok(Scheduling::Normal),
            other => Err(format!(
                "unknown instance scheduling '{other}': use batch or normal"
            )),
        }
    }
}

impl Scheduling {
    /// Makes `cmd`'s child, and everything it starts, run under this policy (inherited
    /// across `fork` and `exec`).
    pub(crate) fn apply(self, cmd: &mut tokio::process::Command) {
        if self == Scheduling::Batch {
            crate::sys::batch_scheduling(cmd);
        }
    }
}
