//! `cloudca::fuzz::ocsp_request` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudca::fuzz::ocsp_request(data));
