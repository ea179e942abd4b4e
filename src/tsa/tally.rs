//! The audit of timestamp tokens: counted, not written one by one. Anyone on the internet can
//! ask for tokens as fast as the rate limit lets them, and an audit row each would let them
//! grow the hash-chained log at that rate. Each daemon counts the tokens it signs and writes
//! one `tsa.issued` entry a minute while it signs any (and one at shutdown) with the count and
//! the lowest and highest serial, so the log says how many tokens were made, when, and which
//! serial range they took.

use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::store::{AuditRecord, Store};

/// Tokens since the last `tsa.issued` entry.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tokens: u64,
    lowest: u64,
    highest: u64,
}

impl Counts {
    /// Adds `other` (tokens counted elsewhere, or put back after a failed write).
    fn add(&mut self, other: Counts) {
        if other.tokens == 0 {
            return;
        }
        if self.tokens == 0 {
            *self = other;
            return;
        }
        self.tokens += other.tokens;
        self.lowest = self.lowest.min(other.lowest);
        self.highest = self.highest.max(other.highest);
    }
}

/// Counts tokens and writes them as `tsa.issued` entries.
pub struct Tally {
    store: Store,
    clock: Arc<dyn Clock>,
    counts: Mutex<Counts>,
}

impl Tally {
    /// Nothing counted yet.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Tally {
        Tally { store, clock, counts: Mutex::new(Counts::default()) }
    }

    /// Counts one token.
    pub fn count(&self, serial: u64) {
        let one = Counts { tokens: 1, lowest: serial, highest: serial };
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).add(one);
    }

    /// Writes what was counted since the last entry (nothing when nothing was). A failed write
    /// puts the counts back, so the next flush reports them.
    pub async fn flush(&self) {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.tokens == 0 {
            return;
        }
        let detail = serde_json::json!({ "tokens": taken.tokens, "lowest_serial": taken.lowest, "highest_serial": taken.highest });
        let record = AuditRecord::new(self.clock.as_ref(), "tsa.issued", "daemon", None, detail);
        if let Err(e) = self.store.audit(&record).await {
            tracing::warn!(error = %e, tokens = taken.tokens, "cannot audit the timestamp count; it is kept for the next round");
            self.counts.lock().unwrap_or_else(|p| p.into_inner()).add(taken);
        }
    }
}
