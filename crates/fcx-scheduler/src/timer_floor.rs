//! Keeps each invocation's timeout from waking its own thread's runtime.
//!
//! When tokio's time driver parks its thread it notes the earliest deadline it will wake for.
//! A timer registered later with an earlier deadline makes it unpark the driver: a `write`
//! to the runtime's eventfd and one more epoll event to handle (sometimes one more
//! `epoll_wait`), even when the registering task runs on that very thread, awake. Between
//! two warm invocations the earliest timer is far off (a connection's idle timeout), so
//! every invocation's timeout did this once (traced with `perf record -e
//! syscalls:sys_enter_write`; docs/benchmarks.md).
//!
//! [`arm`] keeps a "floor" timer at most [`FLOOR`] ahead on each thread that invokes: the
//! driver then parks with a deadline no later than that, and function timeouts (at least
//! one second in FC) register behind it without a wake. It costs one short task and timer per
//! [`FLOOR`] on a thread that keeps invoking, and nothing on an idle one.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead the floor timer is set: no function timeout is shorter (FC's minimum is
/// one second), so none registers ahead of it.
pub const FLOOR: Duration = Duration::from_secs(1);

thread_local! {
    /// When the floor timer on this thread fires (`None`: none armed yet).
    static ARMED_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes sure this thread's runtime has a timer due within [`FLOOR`] of `now` (an instant
/// the caller read anyway), arming one when the last has fired.
pub fn arm(now: Instant) {
    let due = ARMED_UNTIL.with(Cell::get);
    if due.is_some_and(|due| due > now) {
        return;
    }
    let until = now + FLOOR;
    ARMED_UNTIL.with(|c| c.set(Some(until)));
    tokio::spawn(tokio::time::sleep_until(until));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn one_floor_timer_is_armed_per_period_and_rearmed_after_it_fires() {
        let start = Instant::now();
        arm(start);
        let first = ARMED_UNTIL.with(Cell::get);
        assert_eq!(first, Some(start + FLOOR));
        arm(start + FLOOR / 2);
        assert_eq!(
            ARMED_UNTIL.with(Cell::get),
            first,
            "still armed: not armed again"
        );
        tokio::time::advance(FLOOR).await;
        let later = Instant::now();
        arm(later);
        assert_eq!(ARMED_UNTIL.with(Cell::get), Some(later + FLOOR));
    }
}
