//! Durable [`Store`] on redb: one file, `store.redb` in the data directory.
//!
//! On-disk layout: the five tables of the model in `super` (`resources`, `queue`, `state`,
//! `dead`, `meta`), keys `(u64, u64)` big-endian-ordered by redb's tuple encoding, values raw
//! bytes. Every commit uses redb's default immediate durability (the commit returns after the
//! data and the new root are synced), so what [`Store::commit`] returned is on disk.
//!
//! Recovery: redb keeps two commit slots with checksums; after a crash it opens the last
//! complete commit (repairing its allocator state if needed). On top of that, [`RedbStore::open`]
//! checks the format marker: a file redb cannot read, or a redb file that is not an evgrid store,
//! is refused with a message naming the file. It is never truncated or emptied.
//!
//! Must never: write outside a write transaction, or commit with relaxed durability.

use std::path::Path;

use ntex_bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{EntryState, FORMAT, FORMAT_KEY, Op, Queued, Store, StoreError};

const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
const QUEUE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("queue");
const STATE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("state");
const DEAD: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("dead");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Largest value the store accepts (redb's own limit is far above an Event Grid event).
pub const MAX_VALUE: usize = 64 * 1024 * 1024;

pub struct RedbStore {
    db: Database,
}

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

fn range(sub: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (sub, 0)..=(sub, u64::MAX)
}

impl RedbStore {
    /// Opens `path`, creating a new store if the file does not exist.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let existed = path.exists();
        // redb's default cache is 1 GiB; queue data is read back only at start-up, so a smaller
        // cache costs nothing on the hot path.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Refused(format!(
                "{} is in use by another process (is another evgrid running on this data directory?)",
                path.display()
            )),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() != std::io::ErrorKind::InvalidData =>
            {
                StoreError::Io(format!("{}: {io}", path.display()))
            }
            e => StoreError::Refused(format!(
                "{} is not an evgrid store or is damaged ({e}); move it away to start with an empty store",
                path.display()
            )),
        })?;
        let store = RedbStore { db };
        let format = store.meta(FORMAT_KEY)?;
        match format {
            Some(f) if f == FORMAT => {}
            Some(f) => {
                return Err(StoreError::Refused(format!(
                    "{} has store format {:?}, this evgrid reads {:?}",
                    path.display(),
                    String::from_utf8_lossy(&f),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
            None if existed && store.has_tables()? => {
                return Err(StoreError::Refused(format!(
                    "{} is a redb database but not an evgrid store (no format marker); refusing to use it",
                    path.display()
                )));
            }
            None => store.commit(&[Op::PutMeta {
                key: FORMAT_KEY.into(),
                value: FORMAT.to_vec(),
            }])?,
        }
        Ok(store)
    }

    fn has_tables(&self) -> Result<bool, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        Ok(r.list_tables()
            .map_err(io)?
            .any(|t| t.name() != META.name()))
    }
}

impl Store for RedbStore {
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut resources = txn.open_table(RESOURCES).map_err(io)?;
            let mut queue = txn.open_table(QUEUE).map_err(io)?;
            let mut state = txn.open_table(STATE).map_err(io)?;
            let mut dead = txn.open_table(DEAD).map_err(io)?;
            let mut meta = txn.open_table(META).map_err(io)?;
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
                        buf.clear();
                        buf.extend_from_slice(&publish_ms.to_le_bytes());
                        buf.extend_from_slice(body);
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
                }
            }
        }
        txn.commit().map_err(io)
    }

    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = match r.open_table(RESOURCES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn queue(&self, sub: u64) -> Result<Vec<Queued>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let q = match r.open_table(QUEUE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let st = r.open_table(STATE).ok();
        let mut out = Vec::new();
        for item in q.range(range(sub)).map_err(io)? {
            let (k, v) = item.map_err(io)?;
            let (_, seq) = k.value();
            let v = v.value();
            if v.len() < 8 {
                return Err(StoreError::Io(format!(
                    "queue entry ({sub}, {seq}) is damaged: {} bytes",
                    v.len()
                )));
            }
            let publish_ms = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
            let state = match &st {
                Some(t) => match t.get((sub, seq)).map_err(io)? {
                    Some(s) => EntryState::decode(s.value()).unwrap_or_default(),
                    None => EntryState::default(),
                },
                None => EntryState::default(),
            };
            out.push(Queued {
                seq,
                publish_ms,
                body: Bytes::copy_from_slice(&v[8..]),
                state,
            });
        }
        Ok(out)
    }

    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let mut keys = Vec::new();
        for def in [QUEUE, DEAD] {
            let t = match r.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(io(e)),
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
        if after == u64::MAX {
            return Ok(Vec::new());
        }
        let r = self.db.begin_read().map_err(io)?;
        let t = match r.open_table(DEAD) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut out = Vec::new();
        for item in t.range((sub, after + 1)..=(sub, u64::MAX)).map_err(io)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(io)?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }

    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = match r.open_table(DEAD) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let last = t.range(range(sub)).map_err(io)?.next_back();
        match last {
            Some(item) => Ok(item.map_err(io)?.0.value().1),
            None => Ok(0),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(io)?;
        let t = match r.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        Ok(t.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }
}
