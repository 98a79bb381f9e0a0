//! The ntex-io filter layer of an upgraded MQTT-over-WebSocket connection: client frames in,
//! the MQTT byte stream ntex-mqtt's codec reads out; what the broker writes, wrapped in binary
//! frames.
//!
//! Owns the connection's WebSocket state after the upgrade: answering pings, the closing
//! handshake (a close frame back, then shutdown), and closing with the status a framing
//! violation calls for (RFC 6455 §7.4). Holds no MQTT state and never looks inside payloads;
//! never panics and never writes data after its close frame.

use std::cell::RefCell;
use std::io;
use std::task::Poll;

use ntex_bytes::BytePages;
use ntex_io::{FilterBuf, FilterLayer};

use super::frame::{self, CLOSE_NORMAL, Control, FrameDecoder, OP_BINARY, OP_PONG};

#[derive(Debug)]
pub struct WsFilter {
    st: RefCell<State>,
}

#[derive(Debug)]
struct State {
    dec: FrameDecoder,
    /// Our close frame is written: nothing may follow it, and what the client sends is ignored.
    closed: bool,
}

impl WsFilter {
    /// A filter refusing client data frames over `max_payload` bytes.
    pub fn new(max_payload: u64) -> Self {
        WsFilter {
            st: RefCell::new(State {
                dec: FrameDecoder::new(max_payload),
                closed: false,
            }),
        }
    }
}

/// Bytes waiting for the socket above which a ping gets no pong.
const MAX_UNSENT_FOR_PONG: usize = 16 * 1024;

/// Appends one whole server frame to the next layer's write buffer.
fn put_frame(dst: &mut BytePages, opcode: u8, payload: &[u8]) {
    let (h, n) = frame::header(opcode, payload.len());
    dst.extend_from_slice(&h[..n]);
    dst.extend_from_slice(payload);
}

impl FilterLayer for WsFilter {
    fn process_read_buf(&self, buf: &FilterBuf<'_>) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            buf.with_read_src(|src| {
                if let Some(src) = src {
                    src.clear();
                }
            });
            return Ok(());
        }
        let st = &mut *st;
        let close = buf.with_read_buffers(|src, dst| {
            let src = src.as_mut()?;
            loop {
                let code = match st.dec.decode(src, dst) {
                    Ok(None) => return None,
                    Ok(Some(Control::Ping(p))) => {
                        // A client that pings without reading would otherwise grow the write
                        // buffer without bound (reading never pauses for writes): while earlier
                        // output is still unsent, further pings go unanswered, as RFC 6455
                        // §5.5.3 allows (only the latest ping needs a pong).
                        buf.with_write_buffers(|_, w| {
                            if w.len() < MAX_UNSENT_FOR_PONG {
                                put_frame(w, OP_PONG, p.as_slice());
                            }
                        });
                        continue;
                    }
                    // RFC 6455 §5.5.1: the reply echoes the client's status.
                    Ok(Some(Control::Close(code))) => code.unwrap_or(CLOSE_NORMAL),
                    Err(v) => {
                        tracing::debug!(
                            code = v.code,
                            reason = v.reason,
                            "websocket frame refused"
                        );
                        v.code
                    }
                };
                src.clear();
                return Some(code);
            }
        });
        if let Some(code) = close {
            st.closed = true;
            buf.with_write_buffers(|_, w| w.extend_from_slice(&frame::close_frame(code)));
            buf.io().close();
        }
        Ok(())
    }

    fn process_write_buf(&self, buf: &FilterBuf<'_>) -> io::Result<()> {
        let closed = self.st.borrow().closed;
        buf.with_write_buffers(|src, dst| {
            if closed {
                src.clear();
                return;
            }
            let len = src.len();
            if len == 0 {
                return;
            }
            // Everything buffered goes out as one frame: MQTT needs no frame boundaries.
            let (h, n) = frame::header(OP_BINARY, len);
            dst.extend_from_slice(&h[..n]);
            while let Some(page) = src.take() {
                dst.append(page);
            }
        });
        Ok(())
    }

    fn shutdown(&self, buf: &FilterBuf<'_>) -> io::Result<Poll<()>> {
        self.process_write_buf(buf)?;
        let mut st = self.st.borrow_mut();
        if !st.closed {
            st.closed = true;
            buf.with_write_buffers(|_, w| {
                w.extend_from_slice(&frame::close_frame(CLOSE_NORMAL));
            });
        }
        Ok(Poll::Ready(()))
    }
}
