//! Fuzz target `capture_file`: see [`flowmon_fuzz::capture_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowmon_fuzz::capture_file(data));
