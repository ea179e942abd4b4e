//! Timestamp serial numbers: unique per TSA (RFC 3161 §2.4.2) across every daemon sharing the
//! database. A daemon reserves a block of [`BLOCK`] serials with one statement
//! (`Store::reserve_tsa_serials`) and hands them out from memory; serials of a block it never
//! finishes (a restart) are simply never used. One database round trip per block, not per
//! token.
//!
//! A database restored from a back-up has an older counter than the serials issued since.
//! Each block therefore starts at least at [`floor`]: the reservation time in seconds (the
//! [`Clock`]'s resolution) times [`PER_SECOND`], so a block reserved in a later second starts
//! above every block reserved earlier, whatever the counter says, while fewer than
//! [`PER_SECOND`] serials a second are handed out on average (a thousand times what one HSM
//! signs). What it cannot cover is the clock going backwards across a restore.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Serials reserved at a time.
pub const BLOCK: i64 = 1000;

/// Serials a second the time floor leaves room for.
pub const PER_SECOND: i64 = 1 << 20;

/// The lowest first serial of a block reserved at `at`.
pub fn floor(at: time::OffsetDateTime) -> i64 {
    at.unix_timestamp().clamp(0, i64::MAX / PER_SECOND / 2) * PER_SECOND
}

/// This daemon's current block.
pub struct SerialBlocks {
    store: Store,
    clock: Arc<dyn Clock>,
    /// The next serial to hand out and the end of the block (exclusive).
    block: Mutex<(u64, u64)>,
}

impl SerialBlocks {
    /// No block yet: the first token reserves one.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> SerialBlocks {
        SerialBlocks { store, clock, block: Mutex::new((0, 0)) }
    }

    /// The next serial, reserving a new block when this one is spent. Callers waiting while a
    /// block is reserved queue on the lock (once per thousand tokens).
    pub async fn next(&self) -> Result<u64, StoreError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let first = self.store.reserve_tsa_serials(BLOCK, floor(self.clock.now())).await?;
            // The counter starts at 1 and only grows: a negative value is a corrupted row.
            let first =
                u64::try_from(first).map_err(|_| StoreError::Unavailable("tsa_serials went negative".into()))?;
            *block = (first, first + BLOCK as u64);
        }
        let serial = block.0;
        block.0 += 1;
        Ok(serial)
    }
}
