//! `cloudca::fuzz::payment_webhook` under libFuzzer (see docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudca::fuzz::payment_webhook(data));
