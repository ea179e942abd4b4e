//! `cloudca::fuzz::admin_json` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudca::fuzz::admin_json(data));
