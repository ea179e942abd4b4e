#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cloudca::ra::materials::check(data, 1 << 20);
});
