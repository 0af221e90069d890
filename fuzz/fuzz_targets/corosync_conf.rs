#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| corowire_fuzz::unix_targets::corosync_conf(data));
