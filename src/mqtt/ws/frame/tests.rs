use ntex_bytes::BytesMut;

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Everything `wire` decodes to, fed `step` bytes at a time: the data, the controls, and the
/// violation that stopped it, if any.
fn run(wire: &[u8], step: usize, max: u64) -> (Vec<u8>, Vec<Control>, Option<Violation>) {
    let mut d = FrameDecoder::new(max);
    let mut src = BytesMut::new();
    let mut out = BytesMut::new();
    let mut controls = Vec::new();
    for chunk in wire.chunks(step.max(1)) {
        src.extend_from_slice(chunk);
        loop {
            match d.decode(&mut src, &mut out) {
                Ok(None) => break,
                Ok(Some(c)) => controls.push(c),
                Err(v) => return (out.to_vec(), controls, Some(v)),
            }
        }
    }
    (out.to_vec(), controls, None)
}

#[test]
fn binary_frames_stream_whatever_the_read_boundaries() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    let mut wire = frame(true, OP_BINARY, &payload[..10]);
    wire.extend(frame(true, OP_BINARY, &payload[10..300]));
    wire.extend(frame(true, OP_BINARY, &payload[300..]));
    for step in [1, 2, 3, 5, 7, 13, 1000, wire.len()] {
        let (out, controls, v) = run(&wire, step, 1 << 20);
        assert_eq!(v, None, "step {step}");
        assert!(controls.is_empty());
        assert_eq!(out, payload, "step {step}");
    }
}

#[test]
fn fragmented_message_with_a_ping_between_continuations() {
    let mut wire = frame(false, OP_BINARY, b"ab");
    wire.extend(frame(true, OP_PING, b"hi"));
    wire.extend(frame(false, OP_CONTINUATION, b"cde"));
    wire.extend(frame(true, OP_CONTINUATION, b"f"));
    wire.extend(frame(true, OP_BINARY, b""));
    wire.extend(frame(true, OP_PONG, b"x"));
    for step in [1, 4, wire.len()] {
        let (out, controls, v) = run(&wire, step, 100);
        assert_eq!(v, None);
        assert_eq!(out, b"abcdef");
        assert_eq!(controls.len(), 1);
        let Control::Ping(p) = controls[0] else {
            panic!("not a ping")
        };
        assert_eq!(p.as_slice(), b"hi");
    }
}

#[test]
fn close_frames() {
    let (_, c, v) = run(&frame(true, OP_CLOSE, b""), 1, 10);
    assert_eq!((c, v), (vec![Control::Close(None)], None));
    let (_, c, v) = run(&frame(true, OP_CLOSE, b"\x03\xe8bye"), 3, 10);
    assert_eq!((c, v), (vec![Control::Close(Some(1000))], None));
    let bad = [
        (&b"\x03"[..], CLOSE_PROTOCOL),
        (b"\x03\xed", CLOSE_PROTOCOL), // 1005 is never sent
        (b"\x00\x01", CLOSE_PROTOCOL),
        (b"\x03\xe8\xff", CLOSE_INVALID_DATA),
    ];
    for (payload, code) in bad {
        let (_, _, v) = run(&frame(true, OP_CLOSE, payload), 100, 10);
        assert_eq!(v.map(|v| v.code), Some(code), "{payload:?}");
    }
}

#[test]
fn violations() {
    let unmasked = [0x82, 0x01, 0x30];
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(true, OP_TEXT, b"{}"), CLOSE_UNSUPPORTED),
        (unmasked.to_vec(), CLOSE_PROTOCOL),
        (
            {
                let mut f = frame(true, OP_BINARY, b"x");
                f[0] |= 0x40;
                f
            },
            CLOSE_PROTOCOL,
        ),
        (frame(true, OP_PING, &[0; 126]), CLOSE_PROTOCOL),
        (frame(false, OP_PING, b""), CLOSE_PROTOCOL),
        (frame(true, OP_CONTINUATION, b"x"), CLOSE_PROTOCOL),
        (
            {
                let mut f = frame(false, OP_BINARY, b"x");
                f.extend(frame(true, OP_BINARY, b"y"));
                f
            },
            CLOSE_PROTOCOL,
        ),
        (frame(true, 0x3, b""), CLOSE_PROTOCOL),
        (frame(true, 0xB, b""), CLOSE_PROTOCOL),
        (frame(true, OP_BINARY, &[0; 101]), CLOSE_TOO_BIG),
        // A 64-bit length with the top bit set.
        (
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            CLOSE_PROTOCOL,
        ),
    ];
    for (wire, code) in cases {
        let (_, _, v) = run(&wire, 1, 100);
        assert_eq!(v.map(|v| v.code), Some(code), "{wire:02x?}");
    }
    // At the limit is fine; the size check comes from the header, before any payload.
    assert_eq!(run(&frame(true, OP_BINARY, &[0; 100]), 7, 100).2, None);
    let huge = [0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        run(&huge, 14, 1 << 20).2.map(|v| v.code),
        Some(CLOSE_TOO_BIG)
    );
}

#[test]
fn incomplete_input_is_kept_for_later() {
    let wire = frame(true, OP_PING, b"12345");
    let mut d = FrameDecoder::new(10);
    let mut src = BytesMut::from(&wire[..wire.len() - 1]);
    let mut out = BytesMut::new();
    assert_eq!(d.decode(&mut src, &mut out), Ok(None));
    assert_eq!(src.len(), wire.len() - 1);
    src.extend_from_slice(&wire[wire.len() - 1..]);
    assert!(matches!(
        d.decode(&mut src, &mut out),
        Ok(Some(Control::Ping(_)))
    ));
    assert!(src.is_empty());
}

#[test]
fn unmask_at_every_offset() {
    for offset in 0..8 {
        for len in 0..11 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, MASK, offset);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[(offset + i) % 4])
                .collect();
            assert_eq!(fast, slow, "offset {offset} len {len}");
        }
    }
}

#[test]
fn server_headers() {
    assert_eq!(header(OP_BINARY, 5), ([0x82, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2));
    let (h, n) = header(OP_BINARY, 300);
    assert_eq!(&h[..n], &[0x82, 126, 1, 44]);
    let (h, n) = header(OP_BINARY, 70_000);
    assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    assert_eq!(close_frame(1002), [0x88, 2, 0x03, 0xea]);
}
