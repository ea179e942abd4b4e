//! `cloudca::fuzz::clients_json` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudca::fuzz::clients_json(data));
