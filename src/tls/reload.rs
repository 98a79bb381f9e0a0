//! Certificate reload without a restart: on SIGHUP (the caller forwards it with
//! [`Reloader::reload_all`]) and when a listener's certificate or key file changes (checked every
//! [`POLL`]), each listener reads its files again.
//!
//! Owns the watcher thread and its one log line per reload. A reload that fails keeps the
//! certificate in use ([`ServerTls::reload`]); open connections keep theirs either way. Must never
//! stop the server, and never block a caller: the work happens on the watcher's own thread.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use evgrid_actors::metrics::TLS;

use super::ServerTls;

/// How often the files' modification times are compared.
pub const POLL: Duration = Duration::from_secs(2);

/// What identifies a file's version: modification time, size and inode (a file replaced by a
/// rename may keep the old one's mtime).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn stamps(t: &ServerTls) -> [Stamp; 2] {
    let s = t.settings();
    [stamp(&s.cert_file), stamp(&s.key_file)]
}

/// Reloads one listener, logs the outcome and counts it.
fn reload(t: &ServerTls, why: &str) {
    match t.reload() {
        Ok(()) => {
            TLS.reloaded(true);
            tracing::info!(
                section = t.section(),
                cause = why,
                cert = %t.settings().cert_file.display(),
                "TLS certificate reloaded"
            );
        }
        Err(e) => {
            TLS.reloaded(false);
            tracing::warn!(
                section = t.section(),
                cause = why,
                file = %e.file.display(),
                reason = %e.reason,
                "TLS certificate reload refused; the certificate in use is kept"
            );
        }
    }
}

/// The handle of the watcher: dropping it ends the watcher thread.
pub struct Reloader {
    tx: mpsc::Sender<()>,
}

impl Reloader {
    /// Reloads every listener now (SIGHUP).
    pub fn reload_all(&self) {
        let _ = self.tx.send(());
    }
}

/// Starts watching `listeners` (every TLS listener evgrid serves): each reloads when its files
/// change, and all on [`Reloader::reload_all`].
pub fn watch(listeners: Vec<ServerTls>) -> std::io::Result<Reloader> {
    watch_every(listeners, POLL)
}

fn watch_every(listeners: Vec<ServerTls>, poll: Duration) -> std::io::Result<Reloader> {
    let (tx, rx) = mpsc::channel();
    let mut seen: Vec<[Stamp; 2]> = listeners.iter().map(stamps).collect();
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            loop {
                // Without a TLS listener there is nothing to poll: only SIGHUP wakes it.
                let next = match listeners.is_empty() {
                    true => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    false => rx.recv_timeout(poll),
                };
                match next {
                    Ok(()) => {
                        if listeners.is_empty() {
                            tracing::info!("SIGHUP: no TLS listener to reload");
                        }
                        for (t, s) in listeners.iter().zip(seen.iter_mut()) {
                            *s = stamps(t);
                            reload(t, "SIGHUP");
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        for (t, s) in listeners.iter().zip(seen.iter_mut()) {
                            let now = stamps(t);
                            // A file that vanished (being replaced) is not a change yet.
                            if now != *s && now.iter().all(Option::is_some) {
                                *s = now;
                                reload(t, "file changed");
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
    Ok(Reloader { tx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev::DevCa;
    use crate::tls::{ServerTls, TlsListener};

    #[test]
    fn a_changed_file_reloads_and_sighup_reloads_all() {
        let d = std::env::temp_dir().join(format!("evgrid-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        let ca = DevCa::new("CA").expect("ca");
        let (c, k) = ca.issue("localhost", &["localhost"], false).expect("issue");
        let (cf, kf) = (d.join("s.pem"), d.join("s.key"));
        std::fs::write(&cf, c).expect("write");
        std::fs::write(&kf, k).expect("write");
        let cfg = TlsListener {
            bind: "127.0.0.1:0".into(),
            cert_file: cf.clone(),
            key_file: kf.clone(),
            ..TlsListener::default()
        };
        let tls = ServerTls::load("mqtt.tls", &cfg, &[]).expect("loads");
        let first = tls.current_chain();
        let r = watch_every(vec![tls.clone()], Duration::from_millis(20)).expect("watch");
        let (c2, k2) = ca.issue("localhost", &["localhost"], false).expect("issue");
        // Key first, then certificate: the half-written pair is refused, then the whole one
        // taken.
        std::fs::write(&kf, k2).expect("write");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(tls.current_chain(), first, "a mismatched pair is refused");
        std::fs::write(&cf, c2).expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tls.current_chain() == first {
            assert!(std::time::Instant::now() < deadline, "file change not seen");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(r);
        // SIGHUP alone (the poll would take an hour): a new pair is taken, a broken file refused
        // with the certificate kept.
        let r = watch_every(vec![tls.clone()], Duration::from_secs(3600)).expect("watch");
        let second = tls.current_chain();
        let (c3, k3) = ca.issue("localhost", &["localhost"], false).expect("issue");
        std::fs::write(&cf, c3).expect("write");
        std::fs::write(&kf, k3).expect("write");
        r.reload_all();
        while tls.current_chain() == second {
            assert!(
                std::time::Instant::now() < deadline,
                "SIGHUP reload not done"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let third = tls.current_chain();
        std::fs::write(&cf, "broken").expect("write");
        r.reload_all();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(tls.current_chain(), third);
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }
}
