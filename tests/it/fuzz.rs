//! The fuzz targets' short run (CI): every target in `cloudca::fuzz::ALL` over its seed corpus
//! (`fuzz/corpus/<target>/`) and then a bounded number of deterministic mutations of it (bit
//! flips, byte inserts and deletes, truncation, splicing, DER length fiddling, interesting
//! integers), bounded in count and in time. A panic, or an input that takes too long, fails
//! the test and leaves the input in `target/fuzz-findings/` (and its hex in the output); a
//! real hang is caught by a watchdog that does the same and ends the process. The long,
//! coverage-guided run is `scripts/fuzz.sh` (see `docs/fuzzing.md`).

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::postgres_under_test;

/// Most mutated inputs per target.
const MUTATIONS: u64 = 250_000;
/// Most time spent on mutations per target (the seeds always all run).
const BUDGET: Duration = Duration::from_secs(4);
/// One input slower than this is a finding (a parser of small inputs must answer at once).
const SLOW: Duration = Duration::from_secs(2);
/// No progress for this long is a hang: the watchdog saves the input and ends the process.
const HANG: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn findings_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from).join("fuzz-findings")
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("fuzz/corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Values that break length and range checks.
const INTERESTING: [u64; 12] =
    [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// Bytes that mean something to the parsers under test (DER tags and lengths, JSON, PEM,
/// base64, the QR separator, digits).
#[rustfmt::skip]
const TOKENS: &[&[u8]] = &[
    b"\x30\x80", b"\x30\x82\xff\xff", b"\x04\x00", b"\x02\x01\x00", b"\x06\x00", b"\xa0\x03\x02\x01\x00", b"\x81",
    b"\x84\xff\xff\xff\xff", b"\"", b"\\u0000", b"\\ud800", b"{}", b"[]", b"null", b"1e999", b"-0", b"%", b"%2F",
    b"%0A", b"=", b"+", b"/", b"\n", b".", b"0", b"9", b"X", b"\xff", b"\xc3\xa9", b"\xe4\xb8\xad", b"-----BEGIN ",
    b"IEND\xaeB`\x82", b"\xff\xd9", b"%%EOF",
];

/// One mutation of `input`; `others` are the target's seeds, for splicing.
fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, others: &[(String, Vec<u8>)]) {
    let len = input.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.byte();
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(4);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            input.drain(at..at + n);
        }
        4 => input.truncate(rng.below(len + 1)),
        5 if len > 0 => {
            // Duplicate a slice (repeated structures, long fields).
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            let copy = input[at..at + n].to_vec();
            let to = rng.below(len + 1);
            input.splice(to..to, copy);
        }
        6 if !others.is_empty() => {
            let other = &others[rng.below(others.len())].1;
            let keep = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        7 if len > 1 => {
            // A DER length: the byte after a plausible tag gets another short or long form.
            let at = 1 + rng.below(len - 1);
            let replacement: &[u8] = match rng.below(6) {
                0 => &[0x80],
                1 => &[0x81, 0xff],
                2 => &[0x82, 0xff, 0xff],
                3 => &[0x84, 0x7f, 0xff, 0xff, 0xff],
                4 => &[0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                _ => &[0x00],
            };
            let adjusted = [input[at].wrapping_add(1), input[at].wrapping_sub(1)];
            let nudged = [adjusted[rng.below(2)]];
            let bytes = if rng.below(3) == 0 { &nudged[..] } else { replacement };
            input.splice(at..at + 1, bytes.iter().copied());
        }
        8 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let bytes = if rng.below(2) == 0 { value.to_be_bytes() } else { value.to_le_bytes() };
            let bytes = &bytes[8 - width..];
            let at = rng.below(len + 1);
            let end = (at + width).min(len);
            input.splice(at..end, bytes.iter().copied());
        }
        _ => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let at = rng.below(len + 1);
            let end = if rng.below(2) == 0 { at } else { (at + token.len()).min(len) };
            input.splice(at..end, token.iter().copied());
        }
    }
}

/// A seed with one to four mutations stacked.
fn mutant(rng: &mut Rng, seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut input, seeds);
    }
    input
}

/// What went wrong with one input.
#[derive(Debug)]
struct Finding {
    target: String,
    what: String,
    path: PathBuf,
    hex: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = if self.hex.len() > 4096 { format!("{}...", &self.hex[..4096]) } else { self.hex.clone() };
        write!(
            f,
            "fuzz target {} {}\ninput saved to {}\ninput (hex): {hex}",
            self.target,
            self.what,
            self.path.display()
        )
    }
}

/// Saves an input that broke a target and describes it.
fn finding(target: &str, what: String, input: &[u8]) -> Finding {
    use sha2::Digest;
    let dir = findings_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{target}-{}", &hex::encode(sha2::Sha256::digest(input))[..16]);
    let path = dir.join(name);
    std::fs::write(&path, input).unwrap();
    Finding { target: target.to_string(), what, path, hex: hex::encode(input) }
}

/// Runs one input; a panic or a slow answer is a finding.
fn check(name: &str, target: &dyn Fn(&[u8]), input: &[u8], slow: Duration) -> Result<(), Finding> {
    let started = Instant::now();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = started.elapsed();
    match outcome {
        Err(cause) => {
            let message = cause
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| cause.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-text panic)".into());
            Err(finding(name, format!("panicked: {message}"), input))
        }
        Ok(()) if took > slow => Err(finding(name, format!("took {took:?} (limit {slow:?})"), input)),
        Ok(()) => Ok(()),
    }
}

/// Ends the process if the run stops making progress, after saving the input that hangs.
fn watchdog(name: &'static str, progress: Arc<AtomicU64>, current: Arc<Mutex<Vec<u8>>>, done: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let (mut seen, mut since) = (progress.load(Ordering::Relaxed), Instant::now());
        while done.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(100));
            let now = progress.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() > HANG {
                let input = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                eprintln!("{}", finding(name, format!("hung for {HANG:?}"), &input));
                std::process::exit(101);
            }
        }
    });
}

/// Statistics of a run.
#[derive(Debug)]
struct Run {
    seeds: usize,
    executions: u64,
    elapsed: Duration,
}

/// The seeds, then seeded mutations until `mutations` or `budget` runs out.
fn run(name: &'static str, target: &dyn Fn(&[u8]), mutations: u64, budget: Duration) -> Result<Run, Finding> {
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "fuzz/corpus/{name} has no seeds");
    let (progress, current, done) =
        (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicU64::new(0)));
    watchdog(name, progress.clone(), current.clone(), done.clone());
    let started = Instant::now();
    let one = |input: &[u8]| {
        {
            let mut slot = current.lock().unwrap_or_else(|p| p.into_inner());
            slot.clear();
            slot.extend_from_slice(input);
        }
        let result = check(name, target, input, SLOW);
        progress.fetch_add(1, Ordering::Relaxed);
        result
    };
    let result = (|| {
        for (_, seed) in &seeds {
            one(seed)?;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)));
        let mut executions = seeds.len() as u64;
        for _ in 0..mutations {
            if started.elapsed() > budget {
                break;
            }
            one(&mutant(&mut rng, &seeds))?;
            executions += 1;
        }
        Ok(Run { seeds: seeds.len(), executions, elapsed: started.elapsed() })
    })();
    done.store(1, Ordering::Relaxed);
    result
}

/// Runs a target of `cloudca::fuzz::ALL` in the short, bounded way; fails with the input.
fn short_run(name: &'static str) {
    if postgres_under_test() {
        println!("fuzz targets use no database: they ran in the SQLite pass");
        return;
    }
    let target = cloudca::fuzz::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("a target of that name");
    // Panics are expected to be caught and reported here, not printed for every mutant.
    match run(name, &target, MUTATIONS, BUDGET) {
        Ok(r) => println!("{name}: {} seeds, {} executions in {:.1?}", r.seeds, r.executions, r.elapsed),
        Err(f) => panic!("{f}"),
    }
}

#[test]
fn csr_parsing_survives_its_corpus_and_mutations() {
    short_run("csr");
}

#[test]
fn ocsp_request_parsing_survives_its_corpus_and_mutations() {
    short_run("ocsp_request");
}

#[test]
fn tsa_query_parsing_survives_its_corpus_and_mutations() {
    short_run("tsa_query");
}

#[test]
fn ocsp_get_form_survives_its_corpus_and_mutations() {
    short_run("ocsp_get");
}

#[test]
fn qr_payload_parsing_survives_its_corpus_and_mutations() {
    short_run("qr_payload");
}

#[test]
fn material_sniffing_survives_its_corpus_and_mutations() {
    short_run("material");
}

#[test]
fn admin_bodies_survive_their_corpus_and_mutations() {
    short_run("admin_json");
}

#[test]
fn clients_bodies_survive_their_corpus_and_mutations() {
    short_run("clients_json");
}

#[test]
fn ra_bodies_survive_their_corpus_and_mutations() {
    short_run("ra_json");
}

#[test]
fn payment_webhook_survives_its_corpus_and_mutations() {
    short_run("payment_webhook");
}

#[test]
fn every_target_has_a_test_a_corpus_and_a_libfuzzer_binary() {
    let this = include_str!("fuzz.rs");
    for (name, _) in cloudca::fuzz::ALL {
        assert!(this.contains(&format!("short_run(\"{name}\")")), "no short run for {name}");
        assert!(!corpus(name).is_empty(), "no seeds for {name}");
        let binary = repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        assert!(text.contains(&format!("cloudca::fuzz::{name}(")), "{} calls another target", binary.display());
    }
    assert!(!cloudca::fuzz::profiles().is_empty() && !cloudca::fuzz::channels().is_empty(), "policies unreadable");
}

#[test]
fn the_harness_reports_a_panic_with_the_input() {
    let boom = |input: &[u8]| {
        if input.windows(2).any(|w| w == b"\x30\x84") {
            panic!("deliberate: long-form length");
        }
    };
    // Quiet: this panic is the point of the test.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let found = check("harness-self-test", &boom, b"\x30\x84\x00\x00\x00\x01", SLOW);
    let through_mutations = run("ocsp_request", &boom, 200_000, Duration::from_secs(30));
    panic::set_hook(hook);

    let f = found.expect_err("the panic is caught");
    assert!(f.what.contains("deliberate: long-form length"), "{f}");
    assert_eq!(f.hex, "308400000001");
    assert_eq!(std::fs::read(&f.path).unwrap(), b"\x30\x84\x00\x00\x00\x01");
    assert!(f.to_string().contains("308400000001") && f.to_string().contains("fuzz-findings"));
    // The mutator reaches the bad input from real seeds (DER length fiddling).
    let f = through_mutations.expect_err("mutations find the planted bug");
    assert!(std::fs::read(&f.path).unwrap().windows(2).any(|w| w == b"\x30\x84"));
}

#[test]
fn the_harness_reports_a_slow_input() {
    let slow = |_: &[u8]| std::thread::sleep(Duration::from_millis(30));
    let f = check("harness-self-test", &slow, b"slow", Duration::from_millis(10)).expect_err("too slow");
    assert!(f.what.starts_with("took"), "{f}");
}

#[test]
fn mutations_are_deterministic() {
    let seeds = corpus("csr");
    let series = |seed| {
        let mut rng = Rng(seed);
        (0..200).map(|_| mutant(&mut rng, &seeds)).collect::<Vec<_>>()
    };
    assert_eq!(series(7), series(7));
    assert_ne!(series(7), series(8));
}

#[test]
fn valid_seeds_reach_the_parsers_deepest_step() {
    // The seeds are real: those not named `refused-*` parse, so mutations start deep.
    for (file, der) in corpus("csr").iter().filter(|(f, _)| !f.starts_with("refused")) {
        let request = cloudca::ca::csr::parse(der).unwrap_or_else(|e| panic!("{file}: {e}"));
        let profiles = cloudca::fuzz::profiles();
        let fits = profiles.values().any(|p| {
            p.check_key(request.key_type).is_ok()
                && cloudca::ca::subject::build(p, &request.subject, time::macros::date!(2026 - 01 - 01)).is_ok()
        });
        assert!(fits || file.starts_with("operator") || file.contains("extension"), "{file} fits no profile");
    }
    for (file, der) in corpus("ocsp_request").iter().filter(|(f, _)| !f.starts_with("refused")) {
        cloudca::status::ocsp::request::parse(der).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    // The BER and trailing-byte seeds (strict DER, issue 19) are refused.
    for (file, der) in corpus("ocsp_request").iter().filter(|(f, _)| f.starts_with("refused")) {
        assert!(cloudca::status::ocsp::request::parse(der).is_err(), "{file} parsed");
    }
    for (file, bytes) in corpus("material").iter().filter(|(f, _)| !f.starts_with("refused")) {
        cloudca::ra::materials::check(bytes, 1 << 20).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    for (file, text) in corpus("qr_payload").iter().filter(|(_, t)| t.starts_with(b"cloudca1.")) {
        cloudca::signing::qr::parse(std::str::from_utf8(text).unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
