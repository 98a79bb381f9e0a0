//! Durable [`Store`] on redb: one file, `store.redb` in the data directory.
//!
//! On-disk layout: the five tables of the model in `super` (`resources`, `queue`, `state`,
//! `dead`, `meta`), keys `(u64, u64)` big-endian-ordered by redb's tuple encoding, values raw
//! bytes. Every commit uses redb's default immediate durability (the commit returns after the
//! data and the new root are synced), so what [`Store::commit`] returned is on disk.
//!
//! Recovery: redb keeps two commit slots with checksums; after a crash it opens the last
//! complete commit (repairing its allocator state if needed). Every open also checks the whole
//! file (redb's integrity check on open: the checksum of every page of the committed trees), so
//! a file damaged outside redb is refused with an error instead of being trusted (a plain open may
//! panic on it); a panic inside redb while opening is caught and refused the same way. On top of
//! that, [`RedbStore::open`] checks the format marker: a file redb cannot read, a redb file that
//! is not an evgrid store, and an existing file that is empty are refused with a message naming
//! the file and what to do. It is never truncated or emptied: only a missing file makes a new
//! store, built under a temporary name and linked into place once its format marker is durable,
//! so a start interrupted while creating it leaves no empty `store.redb` behind.
//!
//! After a failed commit redb refuses every later transaction ("previous I/O error") until the
//! file is reopened: [`Store::recover`] closes it and opens it again (which repairs it from its
//! last good commit), then writes and removes 1 MiB to prove the disk takes writes again.
//!
//! The file holds every access key: it is created readable by its owner only (0600), and an
//! existing one readable by others is narrowed to that at open.
//!
//! Must never: write outside a write transaction, or commit with relaxed durability.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use ntex_bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{
    EntryState, FORMAT, FORMAT_KEY, Op, Page, Queued, Store, StoreError, dead_letters_after, record,
};

const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
const QUEUE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("queue");
const STATE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("state");
const DEAD: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("dead");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const MQTT: TableDefinition<&str, &[u8]> = TableDefinition::new("mqtt");

/// Meta key the recovery probe writes (the time of the last recovery, ms since the epoch).
const RECOVERED_KEY: &str = "recovered_at_ms";
/// Meta key of the recovery probe's headroom value, removed again by the probe.
const HEADROOM_KEY: &str = "recovery_headroom";
/// What the recovery probe writes (and removes) to call the store healthy: a largest publish
/// request (1 MB by default) must fit. A reopened file can often take a small write in pages
/// redb freed before, even on a full disk; counting that as recovered made readiness flap
/// between 200 and 503 with every request that then failed.
const HEADROOM_BYTES: usize = 1 << 20;

const CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Largest value the store accepts (redb's own limit is far above an Event Grid event).
pub const MAX_VALUE: usize = 64 * 1024 * 1024;

/// How a store locked by another process is reported.
const IN_USE: &str = "is in use by another process";

/// What to tell an operator whose store cannot be read.
const DAMAGED_HINT: &str = "restore it from a backup, or move it away to start with an empty store (every resource, key and queued event would then be gone)";

pub struct RedbStore {
    path: PathBuf,
    /// `None` only between a failed commit's close and a successful reopen ([`Store::recover`]).
    /// Readers and the writer share it; only a recovery takes it exclusively.
    db: RwLock<Option<Database>>,
    /// Test hook: while set and true, every write and sync of the file fails (a full disk).
    #[cfg(test)]
    fail_writes: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Opens `def` for reading; `None` while no commit has created it (it reads as empty).
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match r.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(io(e)),
    }
}

fn range(sub: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (sub, 0)..=(sub, u64::MAX)
}

/// How every handle on the file is opened. redb's default cache is 1 GiB; queue data is read back
/// only at start-up, so a smaller cache costs nothing on the hot path. The integrity check reads
/// the whole file once per open; start-up reads every queued entry anyway.
fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true);
    b
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Refused(format!(
            "{} {IN_USE} (is another evgrid running on this data directory?)",
            path.display()
        )),
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData
                && io.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::Io(format!("{}: {io}", path.display()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => StoreError::Refused(
            format!("{} is damaged ({what}); {DAMAGED_HINT}", path.display()),
        ),
        e => StoreError::Refused(format!(
            "{} is not an evgrid store or is damaged ({e}); {DAMAGED_HINT}",
            path.display()
        )),
    }
}

/// Runs `f` (an open or a first read of the file), turning a panic inside redb into a refusal
/// naming the file: redb may panic on pages it cannot decode.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".into());
        Err(StoreError::Refused(format!(
            "{} is damaged (reading it failed: {what}); {DAMAGED_HINT}",
            path.display()
        )))
    })
}

impl RedbStore {
    /// Opens the store at `path`, creating a new one only if no file is there. A store whose
    /// queues live in the queue log (`store.backend = "log"`) is refused: opened here, every
    /// queued event would look gone.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let store = Self::open_beside_log(path)?;
        if store
            .meta(super::log::QUEUES_KEY)?
            .is_some_and(|v| v == super::log::QUEUES_IN_LOG)
        {
            return Err(StoreError::Refused(format!(
                "{} keeps its queued events in the queue log beside it (queue/); set store.backend = \"log\" to open it",
                path.display()
            )));
        }
        Ok(store)
    }

    /// Opens the store at `path` for [`super::log::LogStore`], which keeps everything but the
    /// queues in it.
    pub fn open_beside_log(path: &Path) -> Result<RedbStore, StoreError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::create(path),
            Err(e) => return Err(StoreError::Io(format!("{}: {e}", path.display()))),
        };
        if !meta.is_file() {
            return Err(StoreError::Refused(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() == 0 {
            // redb would initialize an empty file as a new database: every resource and key
            // gone without a word. A store is never empty (it is created whole, see `create`),
            // so this one was truncated or lost its data.
            return Err(StoreError::Refused(format!(
                "{} is empty (0 bytes), so its data was lost (truncated, or not written out before a crash); {DAMAGED_HINT}",
                path.display()
            )));
        }
        narrow_mode(path, &meta)?;
        // A start that stopped between linking a new store into place and removing its
        // temporary name leaves a second name for the same file (keys included): drop it.
        let _ = std::fs::remove_file(creating(path));
        let store = RedbStore {
            path: path.to_path_buf(),
            db: RwLock::new(None),
            #[cfg(test)]
            fail_writes: None,
        };
        // A process killed a moment ago can hold the file's lock a little longer than it lives
        // (the kernel may release it after the process is gone), so a restart right after a
        // crash waits for it, up to 3 s, before calling the file in use.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match store.open_db() {
                Err(StoreError::Refused(m))
                    if m.contains(IN_USE) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        *store.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
        guarded(path, || store.check_format())?;
        Ok(store)
    }

    /// Opens the existing file (never creates one), catching a panic of redb's.
    fn open_db(&self) -> Result<Database, StoreError> {
        let path = &self.path;
        guarded(path, || {
            #[cfg(test)]
            if let Some(fail) = &self.fail_writes {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(io)?;
                let inner =
                    redb::backends::FileBackend::new(file).map_err(|e| open_error(path, e))?;
                let backend = super::tests::FailingWrites::new(inner, fail.clone());
                return builder()
                    .create_with_backend(backend)
                    .map_err(|e| open_error(path, e));
            }
            builder().open(path).map_err(|e| open_error(path, e))
        })
    }

    /// Reopens the store with writes that fail while `fail` is true.
    #[cfg(test)]
    pub(super) fn with_failing_writes(
        mut self,
        fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<RedbStore, StoreError> {
        self.fail_writes = Some(fail);
        self.recover()?;
        Ok(self)
    }

    /// A new store: built as `<path>.new`, linked to `path` once its format marker is committed.
    fn create(path: &Path) -> Result<RedbStore, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |p: &Path, e: std::io::Error| StoreError::Io(format!("{}: {e}", p.display()));
        let tmp = creating(path);
        // Left by a start that failed before linking it: never a store anybody used.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&tmp, e)),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail(&tmp, e))?;
        let backend = redb::backends::FileBackend::new(file).map_err(|e| open_error(&tmp, e))?;
        let db = builder()
            .create_with_backend(backend)
            .map_err(|e| open_error(&tmp, e))?;
        let store = RedbStore {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            #[cfg(test)]
            fail_writes: None,
        };
        store.commit(&[Op::PutMeta {
            key: FORMAT_KEY.into(),
            value: FORMAT.to_vec(),
        }])?;
        // A hard link fails if `path` appeared meanwhile (never replaces a store); the open
        // handle keeps working on the same file under its new name.
        std::fs::hard_link(&tmp, path).map_err(|e| fail(path, e))?;
        std::fs::remove_file(&tmp).map_err(|e| fail(&tmp, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| fail(dir, e))?;
        }
        Ok(store)
    }

    fn check_format(&self) -> Result<(), StoreError> {
        match self.meta(FORMAT_KEY)? {
            Some(f) if f == FORMAT => Ok(()),
            Some(f) => Err(StoreError::Refused(format!(
                "{} has store format {:?}, this evgrid reads {:?}",
                self.path.display(),
                String::from_utf8_lossy(&f),
                String::from_utf8_lossy(FORMAT)
            ))),
            None if self.has_tables()? => Err(StoreError::Refused(format!(
                "{} is a redb database but not an evgrid store (no format marker); refusing to use it",
                self.path.display()
            ))),
            // A redb file with nothing in it (an evgrid before this one could stop between
            // creating the file and writing the marker): nothing to lose.
            None => self.commit(&[Op::PutMeta {
                key: FORMAT_KEY.into(),
                value: FORMAT.to_vec(),
            }]),
        }
    }

    fn has_tables(&self) -> Result<bool, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        Ok(r.list_tables()
            .map_err(io)?
            .any(|t| t.name() != META.name()))
    }

    /// The open database, for one read or commit.
    fn db(&self) -> Result<OpenDb<'_>, StoreError> {
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            // No path: this reaches HTTP clients.
            return Err(StoreError::Unavailable(
                "the store file is closed after a failed write and has not been reopened yet"
                    .into(),
            ));
        }
        Ok(OpenDb(g))
    }
}

/// A read guard on a database that is open (checked by [`RedbStore::db`]).
struct OpenDb<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for OpenDb<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("RedbStore::db returns open databases only")
    }
}

/// Where a new store is built before it is linked to `path`: `<path>.new`.
fn creating(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    PathBuf::from(tmp)
}

/// Narrows an existing store readable or writable by others to its owner (0600): it holds every
/// access key, and earlier evgrid versions created it with the process's default mode.
fn narrow_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)).map_err(|e| {
        StoreError::Io(format!(
            "{}: cannot make it readable by its owner only: {e}",
            path.display()
        ))
    })?;
    tracing::warn!(
        file = %path.display(),
        was = format!("{mode:o}"),
        now = format!("{:o}", mode & 0o700),
        "the store holds every access key; narrowed its permissions to its owner"
    );
    Ok(())
}

fn commit_on(db: &Database, ops: &[Op]) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(io)?;
    {
        let mut resources = txn.open_table(RESOURCES).map_err(io)?;
        let mut queue = txn.open_table(QUEUE).map_err(io)?;
        let mut state = txn.open_table(STATE).map_err(io)?;
        let mut dead = txn.open_table(DEAD).map_err(io)?;
        let mut meta = txn.open_table(META).map_err(io)?;
        // Opened only by a batch that changes MQTT state (rare next to queue traffic).
        let mut mqtt = None;
        let mut buf = Vec::new();
        for op in ops {
            match op {
                Op::PutResource { path, json } => {
                    resources
                        .insert(path.as_str(), json.as_slice())
                        .map_err(io)?;
                }
                Op::DeleteResource { path } => {
                    resources.remove(path.as_str()).map_err(io)?;
                }
                Op::Enqueue {
                    sub,
                    seq,
                    publish_ms,
                    body,
                } => {
                    if body.len() > MAX_VALUE {
                        // Dropping `txn` uncommitted aborts the whole batch.
                        return Err(StoreError::Refused(format!(
                            "an entry of {} bytes is larger than the store accepts",
                            body.len()
                        )));
                    }
                    record::encode_entry(&mut buf, *publish_ms, body);
                    queue.insert((*sub, *seq), buf.as_slice()).map_err(io)?;
                }
                Op::Remove { sub, seq } => {
                    queue.remove((*sub, *seq)).map_err(io)?;
                    state.remove((*sub, *seq)).map_err(io)?;
                }
                Op::SetState { sub, seq, state: s } => {
                    if queue.get((*sub, *seq)).map_err(io)?.is_some() {
                        state
                            .insert((*sub, *seq), s.encode().as_slice())
                            .map_err(io)?;
                    }
                }
                Op::DeadLetter {
                    sub,
                    seq,
                    dl_seq,
                    record,
                } => {
                    queue.remove((*sub, *seq)).map_err(io)?;
                    state.remove((*sub, *seq)).map_err(io)?;
                    dead.insert((*sub, *dl_seq), record.as_slice())
                        .map_err(io)?;
                }
                Op::DropSubscription { sub } => {
                    queue.retain_in(range(*sub), |_, _| false).map_err(io)?;
                    state.retain_in(range(*sub), |_, _| false).map_err(io)?;
                    dead.retain_in(range(*sub), |_, _| false).map_err(io)?;
                }
                Op::PutMeta { key, value } => {
                    meta.insert(key.as_str(), value.as_slice()).map_err(io)?;
                }
                Op::PutMqtt { key, value } => {
                    if mqtt.is_none() {
                        mqtt = Some(txn.open_table(MQTT).map_err(io)?);
                    }
                    let t = mqtt.as_mut().expect("opened");
                    t.insert(key.as_str(), value.as_slice()).map_err(io)?;
                }
                Op::DeleteMqtt { key } => {
                    if mqtt.is_none() {
                        mqtt = Some(txn.open_table(MQTT).map_err(io)?);
                    }
                    let t = mqtt.as_mut().expect("opened");
                    t.remove(key.as_str()).map_err(io)?;
                }
                Op::DeleteMqttPrefix { prefix } => {
                    if mqtt.is_none() {
                        mqtt = Some(txn.open_table(MQTT).map_err(io)?);
                    }
                    let t = mqtt.as_mut().expect("opened");
                    let mut keys = Vec::new();
                    for item in t.range(prefix.as_str()..).map_err(io)? {
                        let (k, _) = item.map_err(io)?;
                        if !k.value().starts_with(prefix.as_str()) {
                            break;
                        }
                        keys.push(k.value().to_string());
                    }
                    for k in keys {
                        t.remove(k.as_str()).map_err(io)?;
                    }
                }
            }
        }
    }
    txn.commit().map_err(io)
}

impl Store for RedbStore {
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let db = self.db()?;
        commit_on(&db, ops)
    }

    fn free_bytes(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir =
            std::ffi::CString::new(dir.unwrap_or(Path::new(".")).as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `dir` is a NUL-terminated path and `st` a writable statvfs for the call.
        if unsafe { libc::statvfs(dir.as_ptr(), &mut st) } != 0 {
            return None;
        }
        // What an unprivileged writer may still take: root's reserve does not count.
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }

    fn recover(&self) -> Result<(), StoreError> {
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Closed first: redb refuses a second handle on a file that is open.
        *g = None;
        let db = self.open_db()?;
        commit_on(
            &db,
            &[
                Op::PutMeta {
                    key: RECOVERED_KEY.into(),
                    value: crate::model::clock::now_ms().to_le_bytes().to_vec(),
                },
                Op::PutMeta {
                    key: HEADROOM_KEY.into(),
                    value: vec![0; HEADROOM_BYTES],
                },
            ],
        )?;
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(META)
            .map_err(io)?
            .remove(HEADROOM_KEY)
            .map_err(io)?;
        txn.commit().map_err(io)?;
        *g = Some(db);
        Ok(())
    }

    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(t) = read_table(&r, RESOURCES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn queue_page(&self, sub: u64, from: u64, page: Page) -> Result<Vec<Queued>, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(q) = read_table(&r, QUEUE)? else {
            return Ok(Vec::new());
        };
        let st = r.open_table(STATE).ok();
        // State rows are few (entries off the happy path): walk them beside the queue rows
        // instead of looking one up per entry.
        let mut states = match &st {
            Some(t) => Some(t.range((sub, from)..=(sub, u64::MAX)).map_err(io)?),
            None => None,
        };
        let mut next_state: Option<(u64, EntryState)> = None;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in q.range((sub, from)..=(sub, u64::MAX)).map_err(io)? {
            if out.len() >= page.entries || (bytes >= page.bytes && !out.is_empty()) {
                break;
            }
            let (k, v) = item.map_err(io)?;
            let (_, seq) = k.value();
            let v = v.value();
            let Some((publish_ms, body)) = record::decode_entry(v) else {
                return Err(StoreError::Io(format!(
                    "queue entry ({sub}, {seq}) is damaged: {} bytes",
                    v.len()
                )));
            };
            while next_state.is_none_or(|(s, _)| s < seq) {
                let Some(row) = states.as_mut().and_then(|r| r.next()) else {
                    next_state = None;
                    states = None;
                    break;
                };
                let (k, v) = row.map_err(io)?;
                next_state = Some((
                    k.value().1,
                    EntryState::decode(v.value()).unwrap_or_default(),
                ));
            }
            let state = match next_state {
                Some((s, st)) if s == seq => st,
                _ => EntryState::default(),
            };
            bytes += body.len();
            out.push(Queued {
                seq,
                publish_ms,
                body: Bytes::copy_from_slice(body),
                state,
            });
        }
        Ok(out)
    }

    fn queue_extent(&self, sub: u64, from: u64) -> Result<(u64, u64), StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(q) = read_table(&r, QUEUE)? else {
            return Ok((0, 0));
        };
        let last = match q.range(range(sub)).map_err(io)?.next_back() {
            Some(item) => item.map_err(io)?.0.value().1,
            None => return Ok((0, 0)),
        };
        // Keys only: the values (event bodies) are not decoded.
        let n = q.range((sub, from)..=(sub, u64::MAX)).map_err(io)?.count() as u64;
        Ok((n, last))
    }

    fn queue_last(&self, sub: u64) -> Result<u64, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(q) = read_table(&r, QUEUE)? else {
            return Ok(0);
        };
        match q.range(range(sub)).map_err(io)?.next_back() {
            Some(item) => Ok(item.map_err(io)?.0.value().1),
            None => Ok(0),
        }
    }

    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let mut keys = Vec::new();
        for def in [QUEUE, DEAD] {
            let Some(t) = read_table(&r, def)? else {
                continue;
            };
            // Skip from one subscription's range to the next instead of walking every entry.
            let mut next = 0u64;
            loop {
                let Some(item) = t.range((next, 0)..).map_err(io)?.next() else {
                    break;
                };
                let (k, _) = item.map_err(io)?;
                let sub = k.value().0;
                keys.push(sub);
                if sub == u64::MAX {
                    break;
                }
                next = sub + 1;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn dead_letters(
        &self,
        sub: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(range) = dead_letters_after(sub, after) else {
            return Ok(Vec::new());
        };
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(t) = read_table(&r, DEAD)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range(range).map_err(io)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(io)?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }

    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(t) = read_table(&r, DEAD)? else {
            return Ok(0);
        };
        let last = t.range(range(sub)).map_err(io)?.next_back();
        match last {
            Some(item) => Ok(item.map_err(io)?.0.value().1),
            None => Ok(0),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(t) = read_table(&r, META)? else {
            return Ok(None);
        };
        Ok(t.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    fn mqtt_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let db = self.db()?;
        let r = db.begin_read().map_err(io)?;
        let Some(t) = read_table(&r, MQTT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(io)? {
            let (k, v) = item.map_err(io)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}
