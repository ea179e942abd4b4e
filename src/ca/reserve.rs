//! Serials reserved durably ahead of need, in blocks (issuance step 2).
//!
//! Every serial is in `serials` before anything is signed with it, as before. What changes is
//! when: a reservation used to be one write, and so one durable commit, on each certificate's
//! path, and under load the group-commit writer spent half its rows and half its waits on
//! them (`cargo bench --bench issuance`: the writer busy over 90 % of the run). Now each
//! issuer and profile keeps a lane of serials already reserved; a certificate takes one, and
//! the request that finds the lane half empty reserves the next block in one write while the
//! others go on taking. A block doubles (to 256) each time requests found the lane empty while
//! issuance is busy, and falls back to one serial after a quiet second, so a CLI issuing one
//! certificate reserves one or two serials, and a daemon leaves at most a block and a half
//! unused when it stops. An unused reserved serial is harmless: it is never drawn again (a
//! millisecond and 80 random bits, [`super::serial`]) and names no certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::CaError;
use crate::store::{Reservation, StoreError, Write, Writer};

/// The largest block reserved in one write.
const MAX_BLOCK: usize = 256;

/// Refills closer together than this mean issuance is busy: the next block doubles.
const BUSY: Duration = Duration::from_secs(1);

/// Reserved serials by issuer and profile, shared by every clone of the issuance service.
pub struct SerialReserve {
    writer: Writer,
    lanes: Mutex<HashMap<(String, String), Arc<Lane>>>,
}

/// One issuer and profile's serials reserved and not yet used.
#[derive(Default)]
struct Lane {
    state: Mutex<LaneState>,
    /// Held by the one request refilling the lane.
    refill: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct LaneState {
    ready: Vec<[u8; 16]>,
    /// The size of the last block reserved.
    block: usize,
    last_refill: Option<Instant>,
}

impl SerialReserve {
    /// A reserve writing through `writer`; nothing is reserved until a serial is needed.
    pub fn new(writer: Writer) -> SerialReserve {
        SerialReserve { writer, lanes: Mutex::new(HashMap::new()) }
    }

    /// A serial durably reserved for `issuer` and `profile`, used by no one else.
    pub async fn take(&self, issuer: &str, profile: &str, now: i64) -> Result<[u8; 16], CaError> {
        let lane = self.lane(issuer, profile);
        loop {
            let (serial, low) = lane.pop();
            match serial {
                Some(serial) => {
                    if low {
                        if let Ok(_refilling) = lane.refill.try_lock() {
                            // Ahead of need: this serial is already reserved, so a failure here
                            // only means the next request reserves for itself.
                            if let Err(e) = self.refill(&lane, issuer, profile, now, false).await {
                                tracing::warn!(error = %e, issuer, profile, "reserving the next serials failed");
                            }
                        }
                    }
                    return Ok(serial);
                }
                None => {
                    let _refilling = lane.refill.lock().await;
                    if lane.is_empty() {
                        self.refill(&lane, issuer, profile, now, true).await?;
                    }
                }
            }
        }
    }

    fn lane(&self, issuer: &str, profile: &str) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.entry((issuer.to_string(), profile.to_string())).or_default().clone()
    }

    /// Reserves the lane's next block in one durable write (`waited`: a request found the lane
    /// empty). A serial collision (a broken RNG: 127-bit values) fails the whole block, and a
    /// fresh block is drawn; three in a row stop.
    async fn refill(&self, lane: &Lane, issuer: &str, profile: &str, now: i64, waited: bool) -> Result<(), CaError> {
        let size = lane.next_block(waited);
        for _ in 0..3 {
            let block: Vec<[u8; 16]> = (0..size).map(|_| super::serial::generate()).collect();
            let rows = block
                .iter()
                .map(|s| Reservation {
                    serial: super::serial::to_hex(s),
                    issuer: issuer.to_string(),
                    profile: profile.to_string(),
                    reserved_at: now,
                })
                .collect();
            match self.writer.write(Write::Reserve(rows)).await {
                Ok(()) => {
                    lane.add(block);
                    return Ok(());
                }
                Err(StoreError::Duplicate(_)) => tracing::warn!("serial collision; drawing the block again"),
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaError::Build("three serial collisions in a row: check the RNG".into()))
    }
}

impl Lane {
    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reserved serial, if any, and whether the lane is now below half a block.
    fn pop(&self) -> (Option<[u8; 16]>, bool) {
        let mut state = self.state();
        let serial = state.ready.pop();
        let low = state.ready.len() * 2 < state.block.max(1);
        (serial, low)
    }

    fn is_empty(&self) -> bool {
        self.state().ready.is_empty()
    }

    /// The next block's size: one when issuance is quiet (no refill for [`BUSY`]); while it is
    /// busy, double when a request had to wait for serials, else the same again.
    fn next_block(&self, waited: bool) -> usize {
        let mut state = self.state();
        let busy = state.last_refill.is_some_and(|t| t.elapsed() < BUSY);
        state.block = match (busy, waited) {
            (false, _) => 1,
            (true, true) => (state.block * 2).clamp(1, MAX_BLOCK),
            (true, false) => state.block.max(1),
        };
        state.last_refill = Some(Instant::now());
        state.block
    }

    fn add(&self, block: Vec<[u8; 16]>) {
        self.state().ready.extend(block);
    }
}
