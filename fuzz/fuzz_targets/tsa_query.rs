//! `cloudca::fuzz::tsa_query` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudca::fuzz::tsa_query(data));
