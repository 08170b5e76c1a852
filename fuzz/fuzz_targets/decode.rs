//! Fuzz target `decode`: see [`flowmon_fuzz::decode`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowmon_fuzz::decode(data));
