//! Listening sockets for both edges.
//!
//! Owns how evgrid binds a TCP listener (the accept backlog), so the MQTT edge and the start-up
//! code get the same socket from a module that depends on neither. Must never know a protocol.

use std::net::TcpListener;

/// Connections the kernel queues for a listener before we accept them. `std`'s `bind` listens with
/// 128: a fleet reconnecting at once (500 CONNECTs in flight from one load generator) overflowed
/// it, and the dropped SYNs were retried a second later (`TcpExtListenOverflows`), so connecting
/// 10,000 clients took 25 s instead of 2. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listening socket with [`LISTEN_BACKLOG`].
pub(crate) fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    ntex_server::net::create_tcp_listener(addr, LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::Duration;

    /// 600 clients connect before the server accepts any: the kernel must queue them all. With
    /// `std`'s backlog of 128 the rest time out (their SYNs are dropped while the queue is full).
    #[test]
    fn listener_queues_a_connect_storm() {
        let l = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let pending: Vec<TcpStream> = (0..600)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    .unwrap_or_else(|e| panic!("connect {i} not queued: {e}"))
            })
            .collect();
        assert_eq!(pending.len(), 600);
    }
}
