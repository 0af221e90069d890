#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corowire_fuzz::targets::engines(data));
