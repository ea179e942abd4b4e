//! Rate-bounded audit of repetitive events. Failed checks, refused requests and logins are
//! security events, but a client can cause them as fast as it can send: writing every one lets
//! that client flood the hash-chained log (and the database behind it). A [`Coalescer`] admits
//! the first event per (kind, client) in each window and counts the rest; the next admitted
//! event carries that count (`coalesced` in its detail), so the log still says how many there
//! were without one row each.
//!
//! Memory is bounded: at most `max_keys` clients are tracked per coalescer. When that many are
//! active inside one window, further clients share one overflow slot per kind, so an attacker
//! rotating addresses gets one row per kind per window, not one per address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The overflow client key, shared once the table is full.
const OVERFLOW: &str = "*";

/// Admits one event per (kind, client) per window; see the module docs.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    max_keys: usize,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    opened: Instant,
    suppressed: u64,
}

/// What [`Coalescer::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Write this event; `coalesced` earlier events of the same kind and client were not
    /// written (they happened in the previous window after its first event).
    Write {
        /// Events counted but not written since the last written one.
        coalesced: u64,
    },
    /// Do not write: counted, and reported with the next written event.
    Counted,
}

impl Coalescer {
    /// A coalescer with one event per (kind, client) per `window`, tracking at most `max_keys`
    /// clients.
    pub fn new(window: Duration, max_keys: usize) -> Coalescer {
        Coalescer { window, max_keys: max_keys.max(1), slots: Mutex::new(HashMap::new()) }
    }

    /// The usual bound: one per client per minute, 10,000 clients.
    pub fn per_minute() -> Coalescer {
        Coalescer::new(Duration::from_secs(60), 10_000)
    }

    /// Whether to write an event of `kind` caused by `client` (an address, a fingerprint, a
    /// phone: whatever names who causes it) at `now`.
    pub fn admit(&self, kind: &str, client: &str, now: Instant) -> Admission {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (kind.to_string(), client.to_string());
        if !slots.contains_key(&key) && slots.len() >= self.max_keys {
            let window = self.window;
            slots.retain(|_, s| now.saturating_duration_since(s.opened) < window);
            if slots.len() >= self.max_keys {
                key.1 = OVERFLOW.to_string();
            }
        }
        match slots.get_mut(&key) {
            Some(slot) if now.saturating_duration_since(slot.opened) < self.window => {
                slot.suppressed += 1;
                Admission::Counted
            }
            Some(slot) => {
                let coalesced = slot.suppressed;
                *slot = Slot { opened: now, suppressed: 0 };
                Admission::Write { coalesced }
            }
            None => {
                slots.insert(key, Slot { opened: now, suppressed: 0 });
                Admission::Write { coalesced: 0 }
            }
        }
    }
}

impl Default for Coalescer {
    fn default() -> Coalescer {
        Coalescer::per_minute()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_client_per_window_and_the_rest_counted() {
        let c = Coalescer::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        assert_eq!(c.admit("operator.login", "a", t0), Admission::Write { coalesced: 0 });
        for s in 1..=5 {
            assert_eq!(c.admit("operator.login", "a", t0 + Duration::from_secs(s)), Admission::Counted);
        }
        // Another client and another kind are not coalesced with the first.
        assert_eq!(c.admit("operator.login", "b", t0), Admission::Write { coalesced: 0 });
        assert_eq!(c.admit("access.denied", "a", t0), Admission::Write { coalesced: 0 });
        // The next window writes again and carries the count.
        assert_eq!(c.admit("operator.login", "a", t0 + Duration::from_secs(61)), Admission::Write { coalesced: 5 });
    }

    #[test]
    fn rotating_clients_beyond_the_table_share_one_slot() {
        let c = Coalescer::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let written = (0..1000)
            .filter(|i| matches!(c.admit("access.denied", &format!("10.0.0.{i}"), t0), Admission::Write { .. }))
            .count();
        assert_eq!(written, 4, "three tracked clients and one overflow slot");
        // Once the window passes, the table is pruned and new clients are tracked again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(c.admit("access.denied", "10.9.9.9", later), Admission::Write { coalesced: 0 });
    }
}
