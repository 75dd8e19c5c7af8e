//! A paused tokio clock that moves only when the test says so, for tests whose waits are
//! long (idle timeouts, grace periods, retry backoff) while real loopback I/O goes on.
//!
//! Plain `start_paused` does not do here: with the clock paused, tokio advances it to the next
//! timer whenever the runtime parks, even while a socket read is pending, so an instance's
//! answer would race the function timeout. tokio documents the remedy: a running
//! `spawn_blocking` task inhibits auto-advance. [`ManualClock`] holds one for its lifetime.

use std::sync::mpsc;
use std::time::Duration;

/// The clock of the current (single-threaded) test runtime, paused and moved by hand.
pub struct ManualClock {
    release: Option<mpsc::Sender<()>>,
}

impl ManualClock {
    /// Pauses the clock; it stays where it is until [`ManualClock::advance`].
    pub fn start() -> ManualClock {
        tokio::time::pause();
        let (release, held) = mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = held.recv();
        });
        ManualClock {
            release: Some(release),
        }
    }

    /// Moves the clock forward by `by`, firing the timers due on the way, and lets the tasks
    /// they wake run. A timer armed for "now" (an interval's first tick) fires only at the
    /// next advance: the clock must move past it.
    pub async fn advance(&self, by: Duration) {
        tokio::time::advance(by).await;
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
    }

    /// Lets a little real time pass (loopback I/O completing) with the clock standing still.
    pub async fn let_io_run(&self) {
        let _ = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2))).await;
    }

    /// Moves the clock forward by `by` in steps of `step`, so periodic work (a maintenance
    /// tick, a worker's poll) runs at each step.
    pub async fn advance_in_steps(&self, by: Duration, step: Duration) {
        let mut moved = Duration::ZERO;
        while moved < by {
            let next = step.min(by - moved);
            self.advance(next).await;
            moved += next;
        }
    }
}

impl Drop for ManualClock {
    fn drop(&mut self) {
        // Ends the blocking task, so the runtime can shut down.
        self.release.take();
    }
}
