#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evgrid::fuzzing::client_cert(data));
