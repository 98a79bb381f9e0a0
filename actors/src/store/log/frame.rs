//! How the log store lays bytes out: segment headers, commit groups and their records, and the
//! checkpoint. Every multi-byte number is little-endian.
//!
//! - A segment starts with [`SEG_MAGIC`] and its id (u64), then holds groups back to back.
//! - A group is one commit (or one part of a large commit): a 32-byte header — magic (u32),
//!   payload length (u32), CRC-32 of the header's last 20 bytes and the payload (u32), flags
//!   (u32: [`MORE`] another group of the same commit follows; [`REDB`] the commit also changed
//!   the redb file), the commit's generation (u64), reserved (u64, zero) — then its records. The
//!   CRC covers the length too, so a damaged length reads as damage, not as a group cut short.
//! - A record is a kind byte and its fields: [`Record::Enqueue`] (sub, seq, publish ms, body
//!   length u32, body), [`Record::Settle`] (sub, seq), [`Record::State`] (sub, seq, delivery
//!   count u32, available-at ms), [`Record::Drop`] (sub).
//! - The checkpoint file is [`CKPT_MAGIC`], the body's length (u64) and CRC-32 (u32), then the
//!   body ([`Checkpoint`]).
//!
//! Pure: never touches a file, a clock or an actor. Decoding refuses anything malformed with
//! `None`; the caller says where and what.

use super::super::EntryState;

pub const SEG_MAGIC: &[u8; 16] = b"evgrid-log/1\0\0\0\0";
pub const SEG_HEADER: u64 = 24;
pub const GROUP_MAGIC: u32 = u32::from_le_bytes(*b"EVLG");
pub const GROUP_HEADER: usize = 32;
pub const MORE: u32 = 1;
pub const REDB: u32 = 2;
pub const CKPT_MAGIC: &[u8; 16] = b"evgrid-ckpt/1\0\0\0";

const ENQUEUE: u8 = 1;
const SETTLE: u8 = 2;
const STATE: u8 = 3;
const DROP: u8 = 4;

/// Bytes an enqueue record adds before its body.
pub const ENQUEUE_OVERHEAD: usize = 1 + 8 + 8 + 8 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Enqueue {
        sub: u64,
        seq: u64,
        publish_ms: u64,
        body: &'a [u8],
    },
    Settle {
        sub: u64,
        seq: u64,
    },
    State {
        sub: u64,
        seq: u64,
        state: EntryState,
    },
    Drop {
        sub: u64,
    },
}

pub fn segment_header(id: u64) -> [u8; SEG_HEADER as usize] {
    let mut h = [0u8; SEG_HEADER as usize];
    h[..16].copy_from_slice(SEG_MAGIC);
    h[16..].copy_from_slice(&id.to_le_bytes());
    h
}

/// The id a segment header names; `None` if it is not one.
pub fn parse_segment_header(h: &[u8]) -> Option<u64> {
    let (magic, rest) = h.split_first_chunk::<16>()?;
    (magic == SEG_MAGIC).then_some(())?;
    Some(u64::from_le_bytes(*rest.first_chunk::<8>()?))
}

pub fn put_record(buf: &mut Vec<u8>, r: &Record<'_>) {
    match *r {
        Record::Enqueue {
            sub,
            seq,
            publish_ms,
            body,
        } => {
            buf.push(ENQUEUE);
            buf.extend_from_slice(&sub.to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&publish_ms.to_le_bytes());
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(body);
        }
        Record::Settle { sub, seq } => {
            buf.push(SETTLE);
            buf.extend_from_slice(&sub.to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
        }
        Record::State { sub, seq, state } => {
            buf.push(STATE);
            buf.extend_from_slice(&sub.to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&state.delivery_count.to_le_bytes());
            buf.extend_from_slice(&state.available_at_ms.to_le_bytes());
        }
        Record::Drop { sub } => {
            buf.push(DROP);
            buf.extend_from_slice(&sub.to_le_bytes());
        }
    }
}

/// Reserves a group header at the end of `buf`; [`seal_group`] fills it in once the records
/// follow it. Answers the header's offset.
pub fn open_group(buf: &mut Vec<u8>) -> usize {
    let at = buf.len();
    buf.resize(at + GROUP_HEADER, 0);
    at
}

/// Fills in the header reserved at `at` for the records after it.
pub fn seal_group(buf: &mut [u8], at: usize, flags: u32, generation: u64) {
    let len = (buf.len() - at - GROUP_HEADER) as u32;
    let h = &mut buf[at..at + GROUP_HEADER];
    h[0..4].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&generation.to_le_bytes());
    h[24..32].fill(0);
    let mut c = crc32fast::Hasher::new();
    c.update(&buf[at + 4..at + 8]);
    c.update(&buf[at + 12..]);
    let crc = c.finalize();
    buf[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
}

/// A group header as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupHeader {
    pub len: u32,
    pub crc: u32,
    pub flags: u32,
    pub generation: u64,
}

/// `None` unless `h` starts with a group's magic.
pub fn parse_group_header(h: &[u8; GROUP_HEADER]) -> Option<GroupHeader> {
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
    (u32_at(0) == GROUP_MAGIC).then_some(())?;
    Some(GroupHeader {
        len: u32_at(4),
        crc: u32_at(8),
        flags: u32_at(12),
        generation: u64::from_le_bytes(h[16..24].try_into().unwrap()),
    })
}

/// Whether `payload` is what the header `h` (its raw bytes) was sealed over.
pub fn group_intact(h: &[u8; GROUP_HEADER], payload: &[u8]) -> bool {
    let Some(g) = parse_group_header(h) else {
        return false;
    };
    let mut c = crc32fast::Hasher::new();
    c.update(&h[4..8]);
    c.update(&h[12..]);
    c.update(payload);
    g.len as usize == payload.len() && c.finalize() == g.crc
}

/// The records of a group's payload, in order; stops with `Err` at the first malformed one.
pub fn records(mut p: &[u8]) -> impl Iterator<Item = Result<Record<'_>, ()>> {
    let mut failed = false;
    std::iter::from_fn(move || {
        if p.is_empty() || failed {
            return None;
        }
        let r = next_record(&mut p);
        failed = r.is_none();
        Some(r.ok_or(()))
    })
}

fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if p.len() < n {
        return None;
    }
    let (a, b) = p.split_at(n);
    *p = b;
    Some(a)
}

fn u64_of(p: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(p, 8)?.try_into().ok()?))
}

fn u32_of(p: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(p, 4)?.try_into().ok()?))
}

fn next_record<'a>(p: &mut &'a [u8]) -> Option<Record<'a>> {
    let kind = take(p, 1)?[0];
    let sub = u64_of(p)?;
    Some(match kind {
        ENQUEUE => {
            let seq = u64_of(p)?;
            let publish_ms = u64_of(p)?;
            let len = u32_of(p)? as usize;
            Record::Enqueue {
                sub,
                seq,
                publish_ms,
                body: take(p, len)?,
            }
        }
        SETTLE => Record::Settle {
            sub,
            seq: u64_of(p)?,
        },
        STATE => {
            let seq = u64_of(p)?;
            let delivery_count = u32_of(p)?;
            let available_at_ms = u64_of(p)?;
            Record::State {
                sub,
                seq,
                state: EntryState {
                    delivery_count,
                    available_at_ms,
                },
            }
        }
        DROP => Record::Drop { sub },
        _ => return None,
    })
}

/// Where in the log: a segment id and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub seg: u64,
    pub off: u64,
}

/// What a sealed segment holds, per subscription: its first and last sequence there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegSummary {
    pub id: u64,
    pub len: u64,
    pub subs: Vec<(u64, u64, u64)>,
}

/// One subscription's index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubSnap {
    pub key: u64,
    pub last: u64,
    pub settled: Vec<(u64, u64)>,
    pub states: Vec<(u64, EntryState)>,
    /// (first sequence of the sub in the group, where the group starts).
    pub points: Vec<(u64, Pos)>,
}

/// The index as of `pos`: everything the log holds before `pos` is in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub generation: u64,
    pub pos: Pos,
    pub segs: Vec<SegSummary>,
    pub subs: Vec<SubSnap>,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let w64 = |b: &mut Vec<u8>, v: u64| b.extend_from_slice(&v.to_le_bytes());
        w64(&mut b, self.generation);
        w64(&mut b, self.pos.seg);
        w64(&mut b, self.pos.off);
        w64(&mut b, self.segs.len() as u64);
        for s in &self.segs {
            w64(&mut b, s.id);
            w64(&mut b, s.len);
            w64(&mut b, s.subs.len() as u64);
            for &(k, a, z) in &s.subs {
                w64(&mut b, k);
                w64(&mut b, a);
                w64(&mut b, z);
            }
        }
        w64(&mut b, self.subs.len() as u64);
        for s in &self.subs {
            w64(&mut b, s.key);
            w64(&mut b, s.last);
            w64(&mut b, s.settled.len() as u64);
            for &(a, z) in &s.settled {
                w64(&mut b, a);
                w64(&mut b, z);
            }
            w64(&mut b, s.states.len() as u64);
            for (seq, st) in &s.states {
                w64(&mut b, *seq);
                w64(&mut b, st.delivery_count as u64);
                w64(&mut b, st.available_at_ms);
            }
            w64(&mut b, s.points.len() as u64);
            for (seq, p) in &s.points {
                w64(&mut b, *seq);
                w64(&mut b, p.seg);
                w64(&mut b, p.off);
            }
        }
        let mut out = Vec::with_capacity(b.len() + 28);
        out.extend_from_slice(CKPT_MAGIC);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
        out.extend_from_slice(&b);
        out
    }

    /// `None` unless `f` is one whole, intact checkpoint.
    pub fn decode(f: &[u8]) -> Option<Checkpoint> {
        let (magic, mut p) = f.split_first_chunk::<16>()?;
        (magic == CKPT_MAGIC).then_some(())?;
        let len = u64_of(&mut p)?;
        let crc = u32_of(&mut p)?;
        (p.len() as u64 == len && crc32fast::hash(p) == crc).then_some(())?;
        let p = &mut p;
        // Counts are bounded by what the bytes can hold, so a bad count cannot allocate much.
        let count = |p: &mut &[u8], each: usize| -> Option<usize> {
            let n = u64_of(p)? as usize;
            (n <= p.len() / each).then_some(n)
        };
        let generation = u64_of(p)?;
        let pos = Pos {
            seg: u64_of(p)?,
            off: u64_of(p)?,
        };
        let mut segs = Vec::new();
        for _ in 0..count(p, 24)? {
            let (id, len) = (u64_of(p)?, u64_of(p)?);
            let mut subs = Vec::new();
            for _ in 0..count(p, 24)? {
                subs.push((u64_of(p)?, u64_of(p)?, u64_of(p)?));
            }
            segs.push(SegSummary { id, len, subs });
        }
        let mut subs = Vec::new();
        for _ in 0..count(p, 16)? {
            let (key, last) = (u64_of(p)?, u64_of(p)?);
            let mut settled = Vec::new();
            for _ in 0..count(p, 16)? {
                settled.push((u64_of(p)?, u64_of(p)?));
            }
            let mut states = Vec::new();
            for _ in 0..count(p, 24)? {
                let seq = u64_of(p)?;
                let delivery_count = u32::try_from(u64_of(p)?).ok()?;
                let available_at_ms = u64_of(p)?;
                states.push((
                    seq,
                    EntryState {
                        delivery_count,
                        available_at_ms,
                    },
                ));
            }
            let mut points = Vec::new();
            for _ in 0..count(p, 24)? {
                let seq = u64_of(p)?;
                points.push((
                    seq,
                    Pos {
                        seg: u64_of(p)?,
                        off: u64_of(p)?,
                    },
                ));
            }
            subs.push(SubSnap {
                key,
                last,
                settled,
                states,
                points,
            });
        }
        p.is_empty().then_some(Checkpoint {
            generation,
            pos,
            segs,
            subs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_and_any_flipped_byte_is_caught() {
        let mut buf = Vec::new();
        let at = open_group(&mut buf);
        let recs = [
            Record::Enqueue {
                sub: 7,
                seq: 1,
                publish_ms: 99,
                body: b"{\"id\":1}",
            },
            Record::State {
                sub: 7,
                seq: 1,
                state: EntryState {
                    delivery_count: 2,
                    available_at_ms: 5,
                },
            },
            Record::Settle { sub: 7, seq: 1 },
            Record::Drop { sub: 8 },
        ];
        for r in &recs {
            put_record(&mut buf, r);
        }
        seal_group(&mut buf, at, MORE, 42);
        let h: [u8; GROUP_HEADER] = buf[..GROUP_HEADER].try_into().unwrap();
        let g = parse_group_header(&h).unwrap();
        assert_eq!((g.flags, g.generation), (MORE, 42));
        assert!(group_intact(&h, &buf[GROUP_HEADER..]));
        let back: Vec<_> = records(&buf[GROUP_HEADER..]).map(|r| r.unwrap()).collect();
        assert_eq!(back, recs);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let h: [u8; GROUP_HEADER] = bad[..GROUP_HEADER].try_into().unwrap();
            assert!(!group_intact(&h, &bad[GROUP_HEADER..]), "byte {i}");
        }
        assert!(records(&[9, 0, 0]).any(|r| r.is_err()));
        assert!(records(&buf[GROUP_HEADER..buf.len() - 1]).any(|r| r.is_err()));
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_damage() {
        let c = Checkpoint {
            generation: 9,
            pos: Pos { seg: 3, off: 100 },
            segs: vec![SegSummary {
                id: 2,
                len: 4096,
                subs: vec![(7, 1, 50)],
            }],
            subs: vec![SubSnap {
                key: 7,
                last: 50,
                settled: vec![(0, 10), (12, 12)],
                states: vec![(
                    11,
                    EntryState {
                        delivery_count: 1,
                        available_at_ms: 77,
                    },
                )],
                points: vec![(11, Pos { seg: 2, off: 24 })],
            }],
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert_eq!(Checkpoint::decode(&bad), None, "byte {i}");
        }
        assert_eq!(Checkpoint::decode(&b[..b.len() - 1]), None);
        assert_eq!(parse_segment_header(&segment_header(5)), Some(5));
        assert_eq!(parse_segment_header(&[0u8; 24]), None);
    }
}
