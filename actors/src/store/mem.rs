//! In-memory [`Store`]: the same data model as the durable one in ordered maps, behind one lock.
//!
//! For tests and for deployments that choose `store.backend = "memory"` (nothing survives a
//! restart). Must behave exactly like [`super::redb::RedbStore`]; the shared test suite checks it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ntex_bytes::Bytes;

use super::{EntryState, Op, Page, Queued, Store, StoreError, dead_letters_after};

#[derive(Default)]
struct Maps {
    resources: BTreeMap<String, Vec<u8>>,
    queue: BTreeMap<(u64, u64), (u64, Bytes)>,
    state: BTreeMap<(u64, u64), EntryState>,
    dead: BTreeMap<(u64, u64), Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    mqtt: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
pub struct MemStore(Mutex<Maps>);

impl MemStore {
    pub fn new() -> MemStore {
        let s = MemStore::default();
        s.0.lock()
            .expect("fresh lock")
            .meta
            .insert(super::FORMAT_KEY.into(), super::FORMAT.to_vec());
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated: `commit` applies a
        // batch to a copy-free staging step first (see below), so take the data as it is.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn range(sub: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (sub, 0)..=(sub, u64::MAX)
}

impl Store for MemStore {
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut m = self.lock();
        // Atomicity: validate before touching anything (the only failure this backend has is a
        // refused op), then apply.
        for op in ops {
            if let Op::Enqueue { body, .. } = op
                && body.len() > super::redb::MAX_VALUE
            {
                return Err(StoreError::Refused(format!(
                    "an entry of {} bytes is larger than the store accepts",
                    body.len()
                )));
            }
        }
        for op in ops {
            match op {
                Op::PutResource { path, json } => {
                    m.resources.insert(path.clone(), json.clone());
                }
                Op::DeleteResource { path } => {
                    m.resources.remove(path);
                }
                Op::Enqueue {
                    sub,
                    seq,
                    publish_ms,
                    body,
                } => {
                    m.queue.insert((*sub, *seq), (*publish_ms, body.clone()));
                }
                Op::Remove { sub, seq } => {
                    m.queue.remove(&(*sub, *seq));
                    m.state.remove(&(*sub, *seq));
                }
                Op::SetState { sub, seq, state } => {
                    if m.queue.contains_key(&(*sub, *seq)) {
                        m.state.insert((*sub, *seq), *state);
                    }
                }
                Op::DeadLetter {
                    sub,
                    seq,
                    dl_seq,
                    record,
                } => {
                    m.queue.remove(&(*sub, *seq));
                    m.state.remove(&(*sub, *seq));
                    m.dead.insert((*sub, *dl_seq), record.clone());
                }
                Op::DropSubscription { sub } => {
                    let keys: Vec<_> = m.queue.range(range(*sub)).map(|(k, _)| *k).collect();
                    for k in keys {
                        m.queue.remove(&k);
                        m.state.remove(&k);
                    }
                    let keys: Vec<_> = m.dead.range(range(*sub)).map(|(k, _)| *k).collect();
                    for k in keys {
                        m.dead.remove(&k);
                    }
                }
                Op::PutMeta { key, value } => {
                    m.meta.insert(key.clone(), value.clone());
                }
                Op::PutMqtt { key, value } => {
                    m.mqtt.insert(key.clone(), value.clone());
                }
                Op::DeleteMqtt { key } => {
                    m.mqtt.remove(key);
                }
                Op::DeleteMqttPrefix { prefix } => {
                    m.mqtt.retain(|k, _| !k.starts_with(prefix.as_str()));
                }
            }
        }
        Ok(())
    }

    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn queue_page(&self, sub: u64, from: u64, page: Page) -> Result<Vec<Queued>, StoreError> {
        let m = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (k, (publish_ms, body)) in m.queue.range((sub, from)..=(sub, u64::MAX)) {
            if out.len() >= page.entries || (bytes >= page.bytes && !out.is_empty()) {
                break;
            }
            bytes += body.len();
            out.push(Queued {
                seq: k.1,
                publish_ms: *publish_ms,
                body: body.clone(),
                state: m.state.get(k).copied().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    fn queue_extent(&self, sub: u64, from: u64) -> Result<(u64, u64), StoreError> {
        let m = self.lock();
        let last = m
            .queue
            .range(range(sub))
            .next_back()
            .map_or(0, |(k, _)| k.1);
        let n = m.queue.range((sub, from)..=(sub, u64::MAX)).count() as u64;
        Ok((n, last))
    }

    fn queue_last(&self, sub: u64) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .queue
            .range(range(sub))
            .next_back()
            .map_or(0, |(k, _)| k.1))
    }

    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError> {
        let m = self.lock();
        let mut keys: Vec<u64> = m.queue.keys().chain(m.dead.keys()).map(|k| k.0).collect();
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
        Ok(self
            .lock()
            .dead
            .range(range)
            .take(limit)
            .map(|(k, v)| (k.1, v.clone()))
            .collect())
    }

    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .dead
            .range(range(sub))
            .next_back()
            .map_or(0, |(k, _)| k.1))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn mqtt_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .mqtt
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
