//! Fuzz target `table_ops`: see [`flowmon_fuzz::table_ops`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowmon_fuzz::table_ops(data));
