//! OCSP's own bounded share of the HSM pool (security review M2).
//!
//! The pool's job queue is shared, first come first served, by issuance, cloud signing, CRLs
//! and OCSP. Whatever OCSP signs because of a request (a nonce, several certificates, a SHA-256
//! CertID, a certificate not pre-signed yet) is unauthenticated work: without a bound, a flood
//! of such requests fills the queue and every other job waits behind it. Each such signature
//! takes a slot here first; when none is free the request is answered without one (the
//! pre-signed response with its nonce dropped, RFC 8954 §2.1, or `tryLater`). So at most
//! `hsm.ocsp_concurrency` OCSP jobs are ever in the queue, and any other job waits behind at
//! most that many OCSP signatures. Taking a slot never waits.

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::{IntCounter, IntGauge};

use crate::metrics;

/// Counts the OCSP signatures in flight against a cap. The timestamp authority keeps one of its
/// own (`hsm.tsa_concurrency`) with its own meters ([`SigningBudget::with_meters`]).
#[derive(Debug)]
pub struct SigningBudget {
    /// Most signatures in flight at once (`hsm.ocsp_concurrency`).
    cap: AtomicUsize,
    /// Signatures in flight now.
    in_flight: AtomicUsize,
    /// Most signatures ever in flight at once, so tests and operators can check the cap held.
    peak: AtomicUsize,
    /// The gauge of signatures in flight.
    in_flight_gauge: IntGauge,
    /// The counter of refusals (no slot free).
    refused: IntCounter,
}

impl SigningBudget {
    /// OCSP's budget of `cap` concurrent signatures (at least one), reported as
    /// `cloudca_ocsp_signing_in_flight` and `cloudca_ocsp_signing_refused_total`.
    pub fn new(cap: usize) -> Self {
        let m = metrics::get();
        SigningBudget::with_meters(cap, m.ocsp_signing_in_flight.clone(), m.ocsp_signing_refused.clone())
    }

    /// A budget of `cap` concurrent signatures reported on the given meters.
    pub fn with_meters(cap: usize, in_flight_gauge: IntGauge, refused: IntCounter) -> Self {
        SigningBudget {
            cap: AtomicUsize::new(cap.max(1)),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            in_flight_gauge,
            refused,
        }
    }

    /// Changes the cap (start-up wiring); signatures already in flight finish.
    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap.max(1), Ordering::SeqCst);
    }

    /// A slot if one is free now; `None` under load (the caller answers without signing).
    pub fn try_take(&self) -> Option<Slot<'_>> {
        let cap = self.cap.load(Ordering::SeqCst);
        let taken = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < cap).then_some(n + 1));
        match taken {
            Ok(before) => {
                self.peak.fetch_max(before + 1, Ordering::SeqCst);
                self.in_flight_gauge.inc();
                Some(Slot { budget: self })
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }

    /// Most signatures that were ever in flight at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// One signature's slot, given back when dropped (also when the signing future is cancelled).
#[derive(Debug)]
pub struct Slot<'a> {
    budget: &'a SigningBudget,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.budget.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.budget.in_flight_gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_slots_than_the_cap_and_a_dropped_slot_is_given_back() {
        let budget = SigningBudget::new(2);
        let a = budget.try_take().expect("first");
        let _b = budget.try_take().expect("second");
        assert!(budget.try_take().is_none(), "the cap holds");
        drop(a);
        assert!(budget.try_take().is_some(), "a finished signature frees its slot");
        assert_eq!(budget.peak(), 2);
    }
}
