//! Which serving shard the current thread is, and the per-shard slots of an instance's idle
//! connections.
//!
//! `fcx server --serve-threads N` serves the API listener on N threads, each with a
//! current-thread tokio runtime of its own (thread-per-core, as nginx's workers). A tokio
//! `TcpStream` is registered with the reactor of the runtime it was created on: its
//! readiness events are delivered by that runtime's driver, on that runtime's thread. A
//! connection into an instance dialled on shard 1 and then used by a request on shard 0
//! would have every wake-up arrive through shard 1's thread and cross to shard 0's: the very
//! cross-thread hop (a futex wake, a second vCPU woken) that serving per thread removes.
//! So an instance keeps one pool of idle connections per shard: a connection dialled on
//! shard i goes back to slot i and is taken by requests on shard i. Threads outside the
//! shards (the main multi-thread runtime: async workers, initializer calls made there)
//! share slot 0, as all connections did before. A shard that finds its own slot empty
//! moves an idle connection over from another slot (re-registered with its own reactor,
//! `Conn::rehome`) before it dials a new one, so spreading requests over shards does not
//! multiply the connections an instance holds.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

thread_local! {
    /// This thread's slot: 0 outside the shards, `i + 1` on shard i.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Slots an instance made now gets: 1 (outside the shards) + the number of shards.
static SLOTS: AtomicUsize = AtomicUsize::new(1);

/// Announces `shards` serving threads; call it before instances are made (instances made
/// earlier have fewer slots, and the shards past them share slot 0).
pub fn set_shards(shards: usize) {
    SLOTS.fetch_max(shards.saturating_add(1), Ordering::Relaxed);
}

/// Marks the current thread as shard `shard` (0-based); called once as the shard's thread
/// starts, before its runtime serves anything.
pub fn enter(shard: usize) {
    SLOT.set(shard.saturating_add(1));
}

/// The slot the current thread uses among `len`: its own, or 0 when it has none (outside
/// the shards, or a shard past the slots of an instance made before [`set_shards`]).
fn slot_here(len: usize) -> usize {
    let slot = SLOT.get();
    if slot < len {
        slot
    } else {
        0
    }
}

/// Per-shard stacks of idle items (an instance's keep-alive connections).
pub(crate) struct Slots<T> {
    slots: Box<[Slot<T>]>,
}

/// One slot, alone on its cache line: two shards pushing and popping on their own slots
/// must not bounce one line between their cores.
#[repr(align(64))]
struct Slot<T>(Mutex<Vec<T>>);

impl<T> Slots<T> {
    /// As many slots as [`set_shards`] announced (plus slot 0).
    pub(crate) fn new() -> Slots<T> {
        Self::with_len(SLOTS.load(Ordering::Relaxed))
    }

    fn with_len(len: usize) -> Slots<T> {
        Slots {
            slots: (0..len.max(1))
                .map(|_| Slot(Mutex::new(Vec::new())))
                .collect(),
        }
    }

    /// The current thread's slot in these slots.
    pub(crate) fn here(&self) -> usize {
        slot_here(self.slots.len())
    }

    /// The most recently pushed item of `slot`.
    pub(crate) fn pop(&self, slot: usize) -> Option<T> {
        self.slots[slot]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
    }

    /// The most recently pushed item of any slot but `slot`, looking at the slots after it
    /// first (so the shards do not all take from slot 0).
    pub(crate) fn pop_other(&self, slot: usize) -> Option<T> {
        let len = self.slots.len();
        (1..len).find_map(|step| self.pop((slot + step) % len))
    }

    /// Puts `item` back into `slot` (the slot it was taken from or made for, whichever
    /// thread ends up returning it).
    pub(crate) fn push(&self, slot: usize, item: T) {
        self.slots[slot]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a new thread marked as `shard` (None: outside the shards).
    fn on<R: Send>(shard: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(i) = shard {
                    enter(i);
                }
                f()
            })
            .join()
            .expect("thread")
        })
    }

    #[test]
    fn each_shard_takes_back_only_what_it_pooled() {
        let slots: Slots<&str> = Slots::with_len(3);
        assert_eq!(on(None, || slots.here()), 0);
        assert_eq!(on(Some(0), || slots.here()), 1);
        assert_eq!(on(Some(1), || slots.here()), 2);
        on(Some(0), || slots.push(slots.here(), "dialled on shard 0"));
        on(None, || {
            slots.push(slots.here(), "dialled on the main runtime")
        });
        // Shard 1 and the main runtime do not take shard 0's connection.
        assert_eq!(on(Some(1), || slots.pop(slots.here())), None);
        assert_eq!(
            on(None, || slots.pop(slots.here())),
            Some("dialled on the main runtime")
        );
        assert_eq!(on(None, || slots.pop(slots.here())), None);
        // Another thread of shard 0 (the same runtime's) does.
        assert_eq!(
            on(Some(0), || slots.pop(slots.here())),
            Some("dialled on shard 0")
        );
    }

    #[test]
    fn an_empty_slot_takes_from_the_others_after_it_first() {
        let slots: Slots<&str> = Slots::with_len(3);
        assert_eq!(slots.pop_other(1), None);
        slots.push(0, "main");
        slots.push(1, "shard 0");
        slots.push(1, "shard 0, newer");
        // Slot 1 looks at 2, then 0; slot 2 looks at 0, then 1.
        assert_eq!(slots.pop_other(1), Some("main"));
        assert_eq!(slots.pop_other(1), None, "never its own slot");
        assert_eq!(slots.pop_other(2), Some("shard 0, newer"));
        assert_eq!(slots.pop(1), Some("shard 0"));
        let one: Slots<&str> = Slots::with_len(1);
        one.push(0, "only");
        assert_eq!(one.pop_other(0), None, "no other slot");
    }

    #[test]
    fn shards_past_the_slots_share_slot_zero() {
        // An instance made before the shards were announced has slot 0 only.
        let slots: Slots<u32> = Slots::with_len(1);
        assert_eq!(on(Some(3), || slots.here()), 0);
        assert_eq!(on(None, || slots.here()), 0);
        let none: Slots<u32> = Slots::with_len(0);
        assert_eq!(on(Some(0), || none.here()), 0, "at least one slot");
    }

    #[test]
    fn announcing_shards_never_shrinks_the_slots() {
        set_shards(4);
        set_shards(2);
        assert!(Slots::<u32>::new().slots.len() >= 5);
    }
}
