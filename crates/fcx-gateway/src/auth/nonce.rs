//! Replay protection: every `x-acs-signature-nonce` accepted with a key is remembered until
//! its request's `x-acs-date` leaves the skew window, in bounded memory, and in the data
//! dir's nonce journal (`fcx_store::nonces`), so a request replayed after a restart is
//! refused too: the journal's nonces are loaded back at start. When nodes share a store the
//! verifier also claims each nonce in it (`fcx_store::postgres::nonces`), after this cache.
//!
//! When the cache is full, the nonces that would expire first are forgotten and the cache
//! remembers their expiry as a floor: a request expiring at or before the floor is refused,
//! because it might replay a forgotten nonce. Fresh requests expire later than anything in
//! the cache unless more than `capacity` requests arrive within a second, so only clients
//! whose clock lags behind (by more than `capacity / request rate` seconds) are affected.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// The same key already used this nonce within the window.
    Seen,
    /// The request is older than what the full cache can still vouch for.
    TooOld,
}

pub struct NonceCache {
    capacity: usize,
    inner: Mutex<Inner>,
    journal: Option<fcx_store::NonceJournal>,
}

#[derive(Default)]
struct Inner {
    /// Fingerprint of (key id, nonce) → expiry (unix seconds).
    seen: HashMap<u128, i64>,
    by_expiry: BTreeSet<(i64, u128)>,
    /// Requests expiring at or before this may replay a forgotten nonce.
    floor: i64,
}

impl NonceCache {
    pub fn new(capacity: usize) -> NonceCache {
        NonceCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            journal: None,
        }
    }

    /// A cache that also writes every accepted nonce to `journal`, starting with the
    /// nonces a previous run accepted (`remembered`: fingerprint, expiry).
    pub fn durable(
        capacity: usize,
        journal: fcx_store::NonceJournal,
        remembered: &[(u128, i64)],
    ) -> NonceCache {
        let mut cache = NonceCache::new(capacity);
        {
            let inner = cache.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            let mut sorted = remembered.to_vec();
            // Keep the ones that expire last when there are more than fit.
            sorted.sort_by_key(|(_, exp)| std::cmp::Reverse(*exp));
            for (i, (print, exp)) in sorted.into_iter().enumerate() {
                if i >= cache.capacity {
                    inner.floor = inner.floor.max(exp);
                    continue;
                }
                inner.seen.insert(print, exp);
                inner.by_expiry.insert((exp, print));
            }
        }
        cache.journal = Some(journal);
        cache
    }

    /// Records `nonce` of `key_id` for a request valid until `expires`; refuses a replay.
    pub fn check_and_insert(
        &self,
        key_id: &str,
        nonce: &str,
        expires: i64,
        now: i64,
    ) -> Result<(), Replay> {
        let print = fingerprint(key_id, nonce);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what the skew check refuses anyway.
        while let Some(&(exp, p)) = inner.by_expiry.first() {
            if exp >= now {
                break;
            }
            inner.by_expiry.pop_first();
            inner.seen.remove(&p);
        }
        if inner.seen.contains_key(&print) {
            return Err(Replay::Seen);
        }
        if expires <= inner.floor {
            return Err(Replay::TooOld);
        }
        while inner.seen.len() >= self.capacity {
            let Some((exp, p)) = inner.by_expiry.pop_first() else {
                break;
            };
            inner.seen.remove(&p);
            inner.floor = inner.floor.max(exp);
        }
        if expires <= inner.floor {
            return Err(Replay::TooOld);
        }
        inner.seen.insert(print, expires);
        inner.by_expiry.insert((expires, print));
        drop(inner);
        if let Some(journal) = &self.journal {
            // Written before the request runs, so a restart right after it still knows it.
            // A failing disk does not stop signed requests: this run still remembers it.
            if let Err(e) = journal.append(print, expires) {
                tracing::warn!(error = %e, "cannot write the nonce journal: a replay after a restart would not be recognised");
            }
        }
        Ok(())
    }

    /// How many nonces are remembered.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }
}

/// 128 bits of SHA-256 over the key id and nonce: fixed-size entries whatever clients send.
pub(crate) fn fingerprint(key_id: &str, nonce: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(key_id.as_bytes());
    h.update([0u8]);
    h.update(nonce.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_key_until_it_expires() {
        let c = NonceCache::new(10);
        assert_eq!(c.check_and_insert("k", "n", 100, 0), Ok(()));
        assert_eq!(c.check_and_insert("k", "n", 100, 50), Err(Replay::Seen));
        assert_eq!(c.check_and_insert("other", "n", 100, 50), Ok(()));
        // Past its expiry the entry is dropped (the date check refuses such a request).
        assert_eq!(c.check_and_insert("k", "x", 300, 101), Ok(()));
        assert_eq!(c.remembered(), 1);
    }

    #[test]
    fn a_full_cache_forgets_the_oldest_and_refuses_requests_as_old() {
        let c = NonceCache::new(3);
        for (i, exp) in [(1, 100), (2, 110), (3, 120)] {
            c.check_and_insert("k", &i.to_string(), exp, 0).unwrap();
        }
        // Full: nonce 1 (expiring at 100) is forgotten to make room.
        assert_eq!(c.check_and_insert("k", "4", 130, 0), Ok(()));
        assert_eq!(c.remembered(), 3);
        // Its replay is still refused, as is anything that old.
        assert_eq!(c.check_and_insert("k", "1", 100, 0), Err(Replay::TooOld));
        assert_eq!(c.check_and_insert("k", "5", 99, 0), Err(Replay::TooOld));
        assert_eq!(c.check_and_insert("k", "2", 110, 0), Err(Replay::Seen));
        assert_eq!(c.check_and_insert("k", "6", 140, 0), Ok(()));
    }
}
