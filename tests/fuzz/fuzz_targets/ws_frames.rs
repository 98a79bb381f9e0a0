#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = evgrid::fuzzing::ws_frames(data);
});
