#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evgrid::fuzzing::conversion(data));
