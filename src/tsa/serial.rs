//! Timestamp serial numbers: unique per TSA (RFC 3161 §2.4.2) across every daemon sharing the
//! database. A daemon reserves a block of [`BLOCK`] serials with one statement
//! (`Store::reserve_tsa_serials`) and hands them out from memory; serials of a block it never
//! finishes (a restart) are simply never used. One database round trip per block, not per
//! token.

use tokio::sync::Mutex;

use crate::store::{Store, StoreError};

/// Serials reserved at a time.
pub const BLOCK: i64 = 1000;

/// This daemon's current block.
pub struct SerialBlocks {
    store: Store,
    /// The next serial to hand out and the end of the block (exclusive).
    block: Mutex<(u64, u64)>,
}

impl SerialBlocks {
    /// No block yet: the first token reserves one.
    pub fn new(store: Store) -> SerialBlocks {
        SerialBlocks { store, block: Mutex::new((0, 0)) }
    }

    /// The next serial, reserving a new block when this one is spent. Callers waiting while a
    /// block is reserved queue on the lock (once per thousand tokens).
    pub async fn next(&self) -> Result<u64, StoreError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let first = self.store.reserve_tsa_serials(BLOCK).await?;
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
