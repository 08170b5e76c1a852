//! Fuzz target `rule_file`: see [`flowmon_fuzz::rule_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flowmon_fuzz::rule_file(data));
