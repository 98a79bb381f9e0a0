//! The queue log's own promises, beyond the suite every backend passes (`store/tests.rs`):
//! what survives a reopen with and without its closing checkpoint, segments reclaimed once
//! settled, torn tails cut, damage and foreign files refused, redb queues moved in.

use std::path::{Path, PathBuf};

use super::super::tests::dir;

use ntex_bytes::Bytes;

use super::super::mem::MemStore;
use super::super::redb::RedbStore;
use super::super::{EntryState, Op, Store, StoreError};
use super::{LogStore, seg_name};

const SEG: u64 = 8192;

fn open(d: &Path) -> LogStore {
    LogStore::open_with(d, SEG).unwrap()
}

/// Closes like `kill -9`: no closing checkpoint (the torn flag makes the close skip it),
/// though the files are closed so that the same process can open them again.
fn crash(s: LogStore) {
    super::lock(&s.wr).torn = true;
    drop(s);
}

fn enq(sub: u64, seq: u64, len: usize) -> Op {
    Op::Enqueue {
        sub,
        seq,
        publish_ms: 1000 + seq,
        body: Bytes::from(vec![b'a' + (seq % 26) as u8; len]),
    }
}

fn segments(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

type Snapshot = Vec<(u64, Vec<(u64, u64, usize, u8, EntryState)>)>;

/// Every entry of `subs`: sequence, publish time, body length and first byte (each body is one
/// byte repeated), state.
fn snapshot(s: &dyn Store, subs: &[u64]) -> Snapshot {
    subs.iter()
        .map(|&k| {
            let q = s.queue(k).unwrap();
            (
                k,
                q.into_iter()
                    .map(|e| (e.seq, e.publish_ms, e.body.len(), e.body[0], e.state))
                    .collect(),
            )
        })
        .collect()
}

/// A small pseudo-random generator: the model test must be repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn agrees_with_the_memory_store_through_reopens_and_crashes() {
    for seed in [7, 11, 12345, 99] {
        model_run(seed);
    }
}

fn model_run(seed: u64) {
    let d = dir("model");
    let model = MemStore::new();
    let mut log = open(&d.0);
    let mut rng = Rng(seed);
    let subs = [1u64, 2, 3, 4];
    let mut next = [1u64; 5];
    let mut dead = 0u64;
    for round in 0..100 {
        let mut ops = Vec::new();
        for _ in 0..rng.below(12) + 1 {
            let sub = subs[rng.below(4) as usize];
            let live = model.queue(sub).unwrap();
            match rng.below(10) {
                0..=4 => {
                    // Sequences skip sometimes, as a topic's other subscriptions take some.
                    next[sub as usize] += rng.below(3);
                    let seq = next[sub as usize];
                    next[sub as usize] += 1;
                    ops.push(enq(sub, seq, 1 + rng.below(700) as usize));
                }
                5 | 6 if !live.is_empty() => {
                    let e = &live[rng.below(live.len() as u64) as usize];
                    ops.push(Op::Remove { sub, seq: e.seq });
                }
                7 if !live.is_empty() => {
                    let e = &live[rng.below(live.len() as u64) as usize];
                    ops.push(Op::SetState {
                        sub,
                        seq: e.seq,
                        state: EntryState {
                            delivery_count: rng.below(9) as u32,
                            available_at_ms: rng.below(1 << 40),
                        },
                    });
                }
                8 if !live.is_empty() => {
                    dead += 1;
                    ops.push(Op::DeadLetter {
                        sub,
                        seq: live[0].seq,
                        dl_seq: dead,
                        record: b"dl".to_vec(),
                    });
                }
                9 if rng.below(8) == 0 => ops.push(Op::DropSubscription { sub }),
                _ => {}
            }
            // Ops of one batch see each other in the model only once committed: keep batches
            // free of two changes to one entry by committing each op alone half the time.
            if rng.below(2) == 0 {
                model.commit(&ops).unwrap();
                log.commit(&ops).unwrap();
                ops.clear();
            }
        }
        model.commit(&ops).unwrap();
        log.commit(&ops).unwrap();
        assert_eq!(
            snapshot(&log, &subs),
            snapshot(&model, &subs),
            "round {round}"
        );
        for &k in &subs {
            let (n, _) = log.queue_extent(k, 0).unwrap();
            assert_eq!(n as usize, model.queue(k).unwrap().len(), "round {round}");
            // Pages from any point agree too.
            let from = rng.below(next[k as usize] + 1);
            let page = super::super::Page {
                entries: 1 + rng.below(5) as usize,
                bytes: 1 + rng.below(2000) as usize,
            };
            let a: Vec<u64> = log
                .queue_page(k, from, page)
                .unwrap()
                .iter()
                .map(|q| q.seq)
                .collect();
            let b: Vec<u64> = model
                .queue_page(k, from, page)
                .unwrap()
                .iter()
                .map(|q| q.seq)
                .collect();
            assert_eq!(a, b, "round {round} sub {k} from {from}");
        }
        match round % 7 {
            3 => {
                drop(log);
                log = open(&d.0);
            }
            5 => {
                crash(log);
                log = open(&d.0);
            }
            _ => {}
        }
        assert_eq!(
            snapshot(&log, &subs),
            snapshot(&model, &subs),
            "reopened, round {round}"
        );
        assert_eq!(
            log.subscription_keys().unwrap(),
            model.subscription_keys().unwrap(),
            "round {round}"
        );
    }
    assert!(segments(&d.0).len() > 1, "the test crossed segments");
}

#[test]
fn settled_segments_are_deleted_and_one_live_entry_keeps_its_segment() {
    let d = dir("reclaim");
    let s = open(&d.0);
    // Sub 2's one entry sits in the first segment.
    s.commit(&[enq(2, 1, 100)]).unwrap();
    for seq in 1..=200 {
        s.commit(&[enq(1, seq, 500)]).unwrap();
    }
    let before = segments(&d.0);
    assert!(before.len() >= 10, "{before:?}");
    for seq in 1..=200 {
        s.commit(&[Op::Remove { sub: 1, seq }]).unwrap();
    }
    let after = segments(&d.0);
    assert!(
        after.contains(&seg_name(1)),
        "sub 2 still needs it: {after:?}"
    );
    assert!(after.len() <= 3, "{after:?}");
    s.commit(&[Op::Remove { sub: 2, seq: 1 }]).unwrap();
    // Reclaiming happens as settlements commit; the active segment always stays.
    s.commit(&[enq(1, 201, 10), Op::Remove { sub: 1, seq: 201 }])
        .unwrap();
    let last = segments(&d.0);
    assert!(!last.contains(&seg_name(1)), "{last:?}");
    assert!(last.len() <= 2, "{last:?}");
    crash(s);
    let s = open(&d.0);
    assert!(s.queue(1).unwrap().is_empty());
    assert!(s.queue(2).unwrap().is_empty());
    // Sequences continue above what was settled.
    assert_eq!(s.queue_last(1).unwrap(), 201);
    assert!(matches!(
        s.commit(&[enq(1, 201, 1)]),
        Err(StoreError::Refused(_))
    ));
    s.commit(&[enq(1, 202, 1)]).unwrap();
}

fn last_segment(d: &Path) -> PathBuf {
    d.join("queue").join(segments(d).last().unwrap())
}

fn append(p: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(p)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_earlier_commits_stay() {
    let d = dir("torn");
    let s = open(&d.0);
    s.commit(&[enq(1, 1, 50), enq(1, 2, 50)]).unwrap();
    let want = snapshot(&s, &[1]);
    crash(s);
    let seg = last_segment(&d.0);
    let good = std::fs::metadata(&seg).unwrap().len();
    // A commit cut short: its header claims more than was written.
    let mut torn = Vec::new();
    let at = super::frame::open_group(&mut torn);
    super::frame::put_record(&mut torn, &super::frame::Record::Settle { sub: 1, seq: 1 });
    super::frame::seal_group(&mut torn, at, 0, 99);
    append(&seg, &torn[..torn.len() - 3]);
    let s = open(&d.0);
    assert_eq!(snapshot(&s, &[1]), want);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
    s.commit(&[enq(1, 3, 5)]).unwrap();
    crash(s);
    // Zeros past the end (a file extended but not written before the crash).
    append(&last_segment(&d.0), &[0u8; 4000]);
    let s = open(&d.0);
    assert_eq!(s.queue(1).unwrap().len(), 3);
    crash(s);
}

#[test]
fn damage_before_the_tail_and_foreign_files_are_refused_with_the_file_named() {
    let d = dir("damage");
    let s = open(&d.0);
    for seq in 1..=40 {
        s.commit(&[enq(1, seq, 400)]).unwrap();
    }
    crash(s);
    // A flipped byte inside an acknowledged group followed by more groups: damage, not a tear.
    let seg = last_segment(&d.0);
    let mut b = std::fs::read(&seg).unwrap();
    let n = b.len();
    assert!(n > 1500, "several groups follow the damaged one: {n}");
    // Inside the second-last group (each is 461 bytes), past what the roll's checkpoint covers.
    let at = n - 461 - 100;
    b[at] ^= 0xff;
    std::fs::write(&seg, &b).unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(err.to_string().contains(".seg"), "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
    b[at] ^= 0xff;
    std::fs::write(&seg, &b).unwrap();
    open(&d.0);

    // A damaged checkpoint.
    let ck = d.0.join("queue").join("checkpoint");
    let good = std::fs::read(&ck).unwrap();
    let mut bad = good.clone();
    let i = bad.len() - 1;
    bad[i] ^= 1;
    std::fs::write(&ck, &bad).unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(err.to_string().contains("checkpoint"), "{err}");
    std::fs::write(&ck, &good).unwrap();

    // A segment that is not one of ours.
    std::fs::write(
        &seg,
        b"some other program's file, long enough to be a header",
    )
    .unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(
        err.to_string().contains("not an evgrid queue segment"),
        "{err}"
    );

    // A missing segment that held unsettled events.
    std::fs::remove_file(&seg).unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(err.to_string().contains("missing"), "{err}");

    // The whole queue directory gone, while store.redb says the queues are there.
    std::fs::remove_dir_all(d.0.join("queue")).unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(err.to_string().contains("no queue segments"), "{err}");
}

#[test]
fn an_unfinished_redb_commit_is_cut_from_the_log() {
    let d = dir("redbgen");
    let s = open(&d.0);
    s.commit(&[enq(1, 1, 10), enq(1, 2, 10)]).unwrap();
    s.commit(&[Op::DeadLetter {
        sub: 1,
        seq: 1,
        dl_seq: 1,
        record: b"r".to_vec(),
    }])
    .unwrap();
    assert_eq!(s.queue(1).unwrap().len(), 1);
    crash(s);
    // As if the crash came between the log's sync and redb's commit: redb never recorded
    // the generation (and never kept the dead letter).
    {
        let r = RedbStore::open_beside_log(&d.0.join("store.redb")).unwrap();
        r.commit(&[
            Op::PutMeta {
                key: super::LOG_GEN_KEY.into(),
                value: 0u64.to_le_bytes().to_vec(),
            },
            Op::DropSubscription { sub: 1 },
        ])
        .unwrap();
    }
    let s = open(&d.0);
    let q: Vec<u64> = s.queue(1).unwrap().iter().map(|q| q.seq).collect();
    assert_eq!(q, [1, 2]);
}

#[test]
fn the_redb_backend_refuses_a_log_store_and_the_log_moves_redb_queues_in() {
    let d = dir("switch");
    {
        let r = RedbStore::open(&d.0.join("store.redb")).unwrap();
        r.commit(&[
            enq(3, 1, 10),
            enq(3, 2, 10),
            Op::SetState {
                sub: 3,
                seq: 2,
                state: EntryState {
                    delivery_count: 4,
                    available_at_ms: 9,
                },
            },
            enq(4, 7, 10),
        ])
        .unwrap();
    }
    let want = {
        let r = RedbStore::open(&d.0.join("store.redb")).unwrap();
        snapshot(&r, &[3, 4])
    };
    let s = open(&d.0);
    assert_eq!(snapshot(&s, &[3, 4]), want);
    crash(s);
    let err = RedbStore::open(&d.0.join("store.redb"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("store.backend"), "{err}");
    let r = RedbStore::open_beside_log(&d.0.join("store.redb")).unwrap();
    assert!(r.queue(3).unwrap().is_empty(), "moved, not copied");
    drop(r);
    let s = open(&d.0);
    assert_eq!(snapshot(&s, &[3, 4]), want);
}

#[test]
fn a_reopen_replays_only_what_follows_the_checkpoint() {
    let d = dir("ckpt");
    let s = open(&d.0);
    for seq in 1..=300 {
        s.commit(&[enq(5, seq, 300)]).unwrap();
    }
    crash(s);
    // Every segment but the last is covered by the checkpoint: corrupting the first one's
    // bodies goes unnoticed by the open (it reads no sealed segment) but not by a read.
    let first = d.0.join("queue").join(seg_name(1));
    let mut b = std::fs::read(&first).unwrap();
    let i = b.len() - 10;
    b[i] ^= 0xff;
    std::fs::write(&first, &b).unwrap();
    let s = open(&d.0);
    assert_eq!(s.queue_extent(5, 0).unwrap(), (300, 300));
    let err = s.queue(5).unwrap_err();
    assert!(err.to_string().contains(&seg_name(1)), "{err}");
    // Pages that start past the damage read fine.
    let tail = s.queue_page(5, 250, super::super::Page::ALL).unwrap();
    assert_eq!(tail.len(), 51);
}

// Cases found in review: each failed (or refused to open) before its fix.

#[test]
fn a_roll_left_half_done_neither_blocks_commits_nor_the_next_open() {
    let d = dir("roll");
    let s = open(&d.0);
    let mut seq = 1;
    while super::lock(&s.wr).len < SEG {
        s.commit(&[enq(1, seq, 500)]).unwrap();
        seq += 1;
    }
    let next = super::lock(&s.wr).id + 1;
    // Renamed into place, but the directory sync failed: a header-only segment is there.
    std::fs::write(
        d.0.join("queue").join(seg_name(next)),
        super::frame::segment_header(next),
    )
    .unwrap();
    s.commit(&[enq(1, seq, 10)]).unwrap();
    assert_eq!(super::lock(&s.wr).id, next);
    crash(s);
    // Killed while the next one was being made: its temporary file is removed at open.
    let tmp =
        d.0.join("queue")
            .join(format!("{}.new", seg_name(next + 1)));
    std::fs::write(&tmp, b"half a hea").unwrap();
    let s = open(&d.0);
    assert!(!tmp.exists());
    assert_eq!(s.queue(1).unwrap().len() as u64, seq);
}

#[test]
fn a_page_reads_only_segments_holding_the_subscription_and_stops_at_its_last_entry() {
    let d = dir("scan");
    let s = open(&d.0);
    s.commit(&[enq(1, 1, 10)]).unwrap();
    for seq in 1..=200 {
        s.commit(&[enq(2, seq, 500)]).unwrap();
    }
    crash(s);
    // Damage in a segment of sub 2 only: sub 1's reads never touch it.
    let p = d.0.join("queue").join(seg_name(3));
    let mut b = std::fs::read(&p).unwrap();
    let i = b.len() - 10;
    b[i] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    let s = open(&d.0);
    assert_eq!(s.queue(1).unwrap().len(), 1);
    // A drop and a lower sequence for the same key in one commit read as the memory store does.
    let ops = [
        enq(3, 5, 10),
        Op::DropSubscription { sub: 3 },
        enq(3, 1, 10),
    ];
    let m = MemStore::new();
    s.commit(&ops).unwrap();
    m.commit(&ops).unwrap();
    assert_eq!(snapshot(&s, &[3]), snapshot(&m, &[3]));
}

#[test]
fn a_reclaimed_segment_stays_gone_when_its_subscription_key_is_reused() {
    let d = dir("reuse");
    let s = open(&d.0);
    for seq in 100..=140 {
        s.commit(&[enq(3, seq, 500)]).unwrap();
    }
    while super::lock(&s.wr).len < SEG - 1200 {
        let l = s.queue_last(9).unwrap();
        s.commit(&[enq(9, l + 1, 10)]).unwrap();
    }
    s.commit(
        &(100..=140)
            .map(|seq| Op::Remove { sub: 3, seq })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    s.commit(&[Op::DropSubscription { sub: 3 }]).unwrap();
    crash(s);
    let s = open(&d.0);
    s.commit(&[enq(3, 1, 10)]).unwrap();
    crash(s);
    let s = open(&d.0);
    assert_eq!(s.queue(3).unwrap().len(), 1);
}

#[test]
fn a_damaged_length_is_damage_not_a_torn_tail() {
    let d = dir("len");
    let s = open(&d.0);
    for seq in 1..=12 {
        s.commit(&[enq(1, seq, 400)]).unwrap();
    }
    crash(s);
    let seg = last_segment(&d.0);
    let mut b = std::fs::read(&seg).unwrap();
    let n = b.len();
    // The length of the group three from the end (each is 461 bytes).
    b[n - 3 * 461 + 4 + 3] ^= 0x01;
    std::fs::write(&seg, &b).unwrap();
    let err = LogStore::open_with(&d.0, SEG).err().expect("refused");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert_eq!(std::fs::read(&seg).unwrap(), b, "nothing cut");
}

#[test]
fn an_unanswered_multi_group_commit_missing_a_page_is_cut() {
    let d = dir("pages");
    let s = open(&d.0);
    s.commit(&[enq(1, 1, 10)]).unwrap();
    let good = std::fs::metadata(last_segment(&d.0)).unwrap().len() as usize;
    // One commit of several groups whose first group lost a page in a power failure (never
    // answered: its sync did not return).
    s.commit(&[enq(1, 2, 3 << 20), enq(1, 3, 3 << 20), enq(1, 4, 3 << 20)])
        .unwrap();
    crash(s);
    let seg = last_segment(&d.0);
    let mut b = std::fs::read(&seg).unwrap();
    b[good + 8192..good + 12288].fill(0);
    std::fs::write(&seg, &b).unwrap();
    let s = open(&d.0);
    assert_eq!(s.queue(1).unwrap().len(), 1);
    assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, good);
    let kept =
        d.0.join("queue")
            .join(format!("{}.torn-{good}", seg_name(1)));
    assert!(kept.exists(), "the cut bytes are kept beside the segment");
}
