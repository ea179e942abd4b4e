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
//!
//! OCSP's and the TSA's caps are each at most the pool, so together they could fill it. Both
//! budgets therefore also take a slot of one [`PublicShare`], a session fewer than the pool, so
//! issuance and cloud signing always find a session even while both floods fill their caps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// The share all public work together may hold, when the daemon set one.
    public: OnceLock<Arc<PublicShare>>,
}

/// The HSM sessions all unauthenticated public work together (OCSP signatures for requests,
/// timestamp tokens) may hold at once: one fewer than the pool (at least one), so the other
/// jobs are never all queued behind public ones.
#[derive(Debug)]
pub struct PublicShare {
    cap: usize,
    in_flight: AtomicUsize,
}

impl PublicShare {
    /// The share of a pool of `workers` sessions.
    pub fn of_pool(workers: usize) -> Arc<PublicShare> {
        Arc::new(PublicShare { cap: workers.saturating_sub(1).max(1), in_flight: AtomicUsize::new(0) })
    }

    fn try_take(&self) -> bool {
        self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.cap).then_some(n + 1)).is_ok()
    }

    fn give_back(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
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
            public: OnceLock::new(),
        }
    }

    /// Makes every slot of this budget also take one of `public` (start-up wiring, once).
    pub fn share_with(&self, public: Arc<PublicShare>) {
        // A second call keeps the first share: the wiring runs once per process.
        let _ = self.public.set(public);
    }

    /// Changes the cap (start-up wiring); signatures already in flight finish.
    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap.max(1), Ordering::SeqCst);
    }

    /// A slot if one is free now; `None` under load (the caller answers without signing).
    pub fn try_take(&self) -> Option<Slot<'_>> {
        let cap = self.cap.load(Ordering::SeqCst);
        let taken = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < cap).then_some(n + 1));
        let public = self.public.get();
        match taken {
            Ok(before) if public.is_none_or(|p| p.try_take()) => {
                self.peak.fetch_max(before + 1, Ordering::SeqCst);
                self.in_flight_gauge.inc();
                Some(Slot { budget: self })
            }
            Ok(_) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.refused.inc();
                None
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
        if let Some(public) = self.budget.public.get() {
            public.give_back();
        }
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

    #[test]
    fn ocsp_and_the_tsa_together_leave_a_session_of_the_pool_free() {
        // The defaults on two cores: a pool of 2, OCSP's cap 1, the TSA's cap 1. Before the
        // shared share, both floods together held both sessions.
        let public = PublicShare::of_pool(2);
        let (ocsp, tsa) = (SigningBudget::new(1), SigningBudget::new(1));
        ocsp.share_with(public.clone());
        tsa.share_with(public.clone());
        let held = ocsp.try_take().expect("OCSP signs");
        assert!(tsa.try_take().is_none(), "the TSA waits for the public share, not the whole pool");
        drop(held);
        let _tsa = tsa.try_take().expect("the share is given back with the slot");
        assert!(ocsp.try_take().is_none());
        assert_eq!(ocsp.peak(), 1, "a refused slot is not counted");
        let single = PublicShare::of_pool(1);
        assert!(single.try_take(), "a pool of one still serves public work");
    }
}
