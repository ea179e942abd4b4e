//! Rate limits in memory, per daemon: keyed GCRA (generic cell rate algorithm) buckets.
//!
//! A [`Limiter`] allows `count` requests per key at once and then one every `period / count`,
//! and tells a refused caller exactly how long to wait. Each key costs one timestamp (the
//! "theoretical arrival time"); a key whose time has passed is idle and equivalent to an unknown
//! one, so it can be dropped at any moment without changing an answer.
//!
//! Memory is bounded: keys are hashed (SipHash with a per-limiter random key, so nobody can aim
//! keys at one shard) into 16 shards, each holding at most `max_keys / 16` keys. A full shard
//! first drops its idle keys; if an attacker keeps that many keys busy, it then drops the eighth
//! of its keys nearest to idle (those that owe the least), so a flood of new keys costs amortised
//! constant work and can at worst give an evicted key a fresh budget, never more memory.
//!
//! Limits are per daemon: with N daemons behind a load balancer a client can get up to N times
//! the budget. The limits that must be exact across daemons (PIN failures and lockout, SMS codes
//! per phone) are counted in the database; these are in addition to them.
//!
//! Time comes from a [`Ticks`] source so tests move it by hand ([`ManualTicks`]).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{LimitsConfig, Rate};

/// Monotonic time in nanoseconds from an arbitrary origin.
pub trait Ticks: Send + Sync {
    /// Nanoseconds since the origin; never goes backwards.
    fn now(&self) -> u64;
}

/// The process's monotonic clock (`Instant`), immune to wall-clock steps.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicTicks(Instant);

impl Default for MonotonicTicks {
    fn default() -> Self {
        MonotonicTicks(Instant::now())
    }
}

impl Ticks for MonotonicTicks {
    fn now(&self) -> u64 {
        // u64 nanoseconds last 584 years of uptime.
        self.0.elapsed().as_nanos() as u64
    }
}

/// A clock tests advance by hand.
#[derive(Debug, Default)]
pub struct ManualTicks(AtomicU64);

impl ManualTicks {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Ticks for ManualTicks {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A refused request: how long to wait, and whether it is the key's first refusal since it
/// was last allowed (callers audit only those, so a flood cannot flood the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The limit's name (its config key), for the metric, the audit event and the log.
    pub limit: &'static str,
    /// Until the key would be allowed again.
    pub wait: Duration,
    /// First refusal since the key was last allowed.
    pub first: bool,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up and at least 1 (RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> u64 {
        let seconds = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        seconds.max(1)
    }
}

/// The hash is already a keyed SipHash: the shard maps use it as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Theoretical arrival time (ns): the key is idle once `now` passes it.
    tat: u64,
    /// Refused since it was last allowed.
    refused: bool,
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

const SHARDS: usize = 16;

/// One limit over many keys (phones, addresses, credentials...).
pub struct Limiter {
    name: &'static str,
    /// Nanoseconds between two requests once the burst is spent (`period / count`); 0: off.
    emission: u64,
    /// `emission * count`: how far ahead of now a key's arrival time may run.
    window: u64,
    shard_capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    ticks: Arc<dyn Ticks>,
    refused: prometheus::IntCounter,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("name", &self.name).field("emission_ns", &self.emission).finish()
    }
}

impl Limiter {
    /// A limiter named after its config key; `rate.count == 0` makes one that allows everything.
    pub fn new(name: &'static str, rate: Rate, max_keys: usize, ticks: Arc<dyn Ticks>) -> Limiter {
        let period = u64::from(rate.seconds) * 1_000_000_000;
        let emission = if rate.count == 0 { 0 } else { (period / u64::from(rate.count)).max(1) };
        let shard_capacity = max_keys.div_ceil(SHARDS).max(8);
        Limiter {
            name,
            emission,
            window: emission * u64::from(rate.count),
            shard_capacity,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            ticks,
            refused: crate::metrics::get().rate_limited.with_label_values(&[name]),
        }
    }

    /// The config key this limiter enforces.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it limits anything.
    pub fn enabled(&self) -> bool {
        self.emission > 0
    }

    fn slot(&self, key: &(impl Hash + ?Sized)) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one(key);
        // The high bits pick the shard; the map's buckets use the low ones.
        (hash, &self.shards[(hash >> 60) as usize % SHARDS])
    }

    /// Spends one request of `key`'s budget, or says how long to wait (spending nothing).
    pub fn check(&self, key: &(impl Hash + ?Sized)) -> Result<(), Refusal> {
        if self.emission == 0 {
            return Ok(());
        }
        let now = self.ticks.now();
        let (hash, shard) = self.slot(key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get(&hash).copied();
        let next = entry.map_or(now, |e| e.tat.max(now)) + self.emission;
        if next - now > self.window {
            let first = entry.is_some_and(|e| !e.refused);
            if let Some(e) = map.get_mut(&hash) {
                e.refused = true;
            }
            drop(map);
            self.refused.inc();
            return Err(Refusal { limit: self.name, wait: Duration::from_nanos(next - self.window - now), first });
        }
        match map.get_mut(&hash) {
            Some(e) => *e = Entry { tat: next, refused: false },
            None => {
                self.make_room(&mut map, now);
                map.insert(hash, Entry { tat: next, refused: false });
            }
        }
        Ok(())
    }

    /// Whether `key` would be refused now, spending nothing either way.
    pub fn peek(&self, key: &(impl Hash + ?Sized)) -> Result<(), Refusal> {
        if self.emission == 0 {
            return Ok(());
        }
        let now = self.ticks.now();
        let (hash, shard) = self.slot(key);
        let tat = shard.lock().unwrap_or_else(|p| p.into_inner()).get(&hash).map_or(now, |e| e.tat.max(now));
        let next = tat + self.emission;
        if next - now > self.window {
            self.refused.inc();
            return Err(Refusal {
                limit: self.name,
                wait: Duration::from_nanos(next - self.window - now),
                first: false,
            });
        }
        Ok(())
    }

    /// Refuses `key` for `wait` from now (or longer, if it already waits longer): for a refusal
    /// decided elsewhere (the database's per-phone SMS count), so repeats are answered from
    /// memory with the exact wait.
    pub fn hold(&self, key: &(impl Hash + ?Sized), wait: Duration) {
        if self.emission == 0 {
            return;
        }
        let now = self.ticks.now();
        // Refused while tat + emission - window > now, i.e. until now + wait.
        let tat = now + wait.as_nanos() as u64 + self.window - self.emission;
        let (hash, shard) = self.slot(key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&hash) {
            Some(e) => *e = Entry { tat: e.tat.max(tat), refused: true },
            None => {
                self.make_room(&mut map, now);
                map.insert(hash, Entry { tat, refused: true });
            }
        }
    }

    /// Keys remembered now (idle ones included until they are swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for one more key in a full shard: idle keys first, then the eighth nearest
    /// to idle.
    fn make_room(&self, map: &mut Shard, now: u64) {
        if map.len() < self.shard_capacity {
            return;
        }
        map.retain(|_, e| e.tat > now);
        if map.len() < self.shard_capacity {
            return;
        }
        let mut times: Vec<u64> = map.values().map(|e| e.tat).collect();
        let cut = (times.len() / 8).max(1);
        let (_, threshold, _) = times.select_nth_unstable(cut - 1);
        let threshold = *threshold;
        map.retain(|_, e| e.tat > threshold);
        // Ties at the threshold may all go, or (all equal) none: then drop any one.
        if map.len() >= self.shard_capacity {
            if let Some(k) = map.keys().next().copied() {
                map.remove(&k);
            }
        }
    }
}

/// Every limit of the `[limits]` section, built once per daemon and shared by its listeners.
#[derive(Debug)]
pub struct Limits {
    /// SMS codes per client address.
    pub sms_per_ip: Limiter,
    /// Refusals of the database's per-phone SMS limits, remembered so repeats cost no query.
    pub sms_per_phone: Limiter,
    /// Secret guesses (SMS codes, PINs) per phone, credential, order or subject.
    pub attempts_per_credential: Limiter,
    /// Secret guesses per client address.
    pub attempts_per_ip: Limiter,
    /// Signing sessions opened per relying platform.
    pub signing_sessions_per_platform: Limiter,
    /// Changes to one application order.
    pub ra_writes_per_order: Limiter,
    /// New application orders per client address.
    pub ra_orders_per_ip: Limiter,
    /// Payment webhooks and sandbox provider pages per client address.
    pub callbacks_per_ip: Limiter,
    /// OCSP requests per client address (off unless configured).
    pub ocsp_per_ip: Limiter,
    /// Timestamp requests per client address.
    pub tsa_per_ip: Limiter,
    /// PAdES signing sessions opened per relying platform.
    pub pdf_sessions_per_platform: Limiter,
}

impl Limits {
    /// Builds every limiter from the configuration, on the process's monotonic clock.
    pub fn new(config: &LimitsConfig) -> Limits {
        Limits::with_ticks(config, Arc::new(MonotonicTicks::default()))
    }

    /// Builds every limiter on `ticks`.
    pub fn with_ticks(config: &LimitsConfig, ticks: Arc<dyn Ticks>) -> Limits {
        let limiter = |name, rate| Limiter::new(name, rate, config.max_keys, ticks.clone());
        // The per-phone memo only ever holds keys the database refused; hour-long holds.
        let memo = Rate { count: 1, seconds: 3600 };
        Limits {
            sms_per_ip: limiter("sms_per_ip", config.sms_per_ip),
            sms_per_phone: limiter("sms_per_phone", memo),
            attempts_per_credential: limiter("attempts_per_credential", config.attempts_per_credential),
            attempts_per_ip: limiter("attempts_per_ip", config.attempts_per_ip),
            signing_sessions_per_platform: limiter(
                "signing_sessions_per_platform",
                config.signing_sessions_per_platform,
            ),
            ra_writes_per_order: limiter("ra_writes_per_order", config.ra_writes_per_order),
            ra_orders_per_ip: limiter("ra_orders_per_ip", config.ra_orders_per_ip),
            callbacks_per_ip: limiter("callbacks_per_ip", config.callbacks_per_ip),
            ocsp_per_ip: limiter("ocsp_per_ip", config.ocsp_per_ip),
            tsa_per_ip: limiter("tsa_per_ip", config.tsa_per_ip),
            pdf_sessions_per_platform: limiter("pdf_sessions_per_platform", config.pdf_sessions_per_platform),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(count: u32, seconds: u32, max_keys: usize) -> (Limiter, Arc<ManualTicks>) {
        let ticks = Arc::new(ManualTicks::default());
        (Limiter::new("test", Rate { count, seconds }, max_keys, ticks.clone()), ticks)
    }

    #[test]
    fn a_burst_of_count_then_one_per_interval() {
        let (l, t) = limiter(3, 60, 1000);
        for _ in 0..3 {
            l.check("a").unwrap();
        }
        let refused = l.check("a").unwrap_err();
        assert_eq!(refused.wait, Duration::from_secs(20));
        assert_eq!(refused.retry_after(), 20);
        assert!(refused.first);
        assert!(!l.check("a").unwrap_err().first, "only the first refusal is flagged");
        t.advance(Duration::from_secs(19));
        assert_eq!(l.check("a").unwrap_err().retry_after(), 1);
        t.advance(Duration::from_secs(1));
        l.check("a").unwrap();
        assert!(l.check("a").unwrap_err().first, "allowed in between: first again");
    }

    #[test]
    fn a_refusal_spends_nothing() {
        let (l, t) = limiter(1, 10, 1000);
        l.check("a").unwrap();
        for _ in 0..100 {
            assert!(l.check("a").is_err());
        }
        t.advance(Duration::from_secs(10));
        l.check("a").unwrap();
    }

    #[test]
    fn keys_are_independent() {
        let (l, _) = limiter(1, 10, 1000);
        l.check("a").unwrap();
        assert!(l.check("a").is_err());
        l.check("b").unwrap();
        l.check(&42u64).unwrap();
    }

    #[test]
    fn an_idle_key_regains_its_whole_burst() {
        let (l, t) = limiter(5, 5, 1000);
        for _ in 0..5 {
            l.check("a").unwrap();
        }
        t.advance(Duration::from_secs(3600));
        for _ in 0..5 {
            l.check("a").unwrap();
        }
        assert!(l.check("a").is_err());
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let r = |ns| Refusal { limit: "x", wait: Duration::from_nanos(ns), first: true }.retry_after();
        assert_eq!(r(1), 1);
        assert_eq!(r(0), 1);
        assert_eq!(r(999_999_999), 1);
        assert_eq!(r(1_000_000_000), 1);
        assert_eq!(r(1_000_000_001), 2);
    }

    #[test]
    fn count_zero_is_off() {
        let (l, _) = limiter(0, 1, 1000);
        assert!(!l.enabled());
        for _ in 0..1000 {
            l.check("a").unwrap();
        }
        assert!(l.is_empty(), "an off limiter remembers nothing");
    }

    #[test]
    fn hold_refuses_for_the_given_time() {
        let (l, t) = limiter(10, 60, 1000);
        l.hold("p", Duration::from_secs(30));
        let refused = l.check("p").unwrap_err();
        assert_eq!(refused.retry_after(), 30);
        assert!(!refused.first, "a hold records its own refusal");
        assert_eq!(l.peek("p").unwrap_err().retry_after(), 30);
        t.advance(Duration::from_secs(30));
        l.peek("p").unwrap();
        l.peek("p").unwrap();
        l.check("p").unwrap();
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let (l, t) = limiter(2, 60, 1600);
        for i in 0..100_000u32 {
            l.check(&i).unwrap();
            if i % 1000 == 0 {
                t.advance(Duration::from_millis(1));
            }
        }
        assert!(l.len() <= 1600, "{} keys", l.len());
    }

    #[test]
    fn idle_keys_go_first_and_busy_keys_stay() {
        let (l, t) = limiter(1, 60, 160);
        // One busy key that owes a long wait.
        l.check("victim").unwrap();
        l.hold("victim", Duration::from_secs(3600));
        // Many keys, all idle a minute later.
        for i in 0..150u32 {
            l.check(&i).unwrap();
        }
        t.advance(Duration::from_secs(61));
        for i in 1000..100_000u32 {
            l.check(&i).unwrap();
        }
        assert!(l.len() <= 160);
        assert!(l.check("victim").is_err(), "the key owing most is evicted last");
    }

    #[test]
    fn limits_build_from_the_defaults() {
        let limits = Limits::new(&LimitsConfig::default());
        assert!(!limits.ocsp_per_ip.enabled(), "OCSP is unlimited unless configured");
        assert!(limits.sms_per_ip.enabled() && limits.attempts_per_credential.enabled());
        assert_eq!(limits.attempts_per_ip.name(), "attempts_per_ip");
    }
}
