//! The queue log's segment files: listing them, making a new one safely, and reading one back
//! into the index at start-up, cutting a torn tail in the last segment and refusing damage
//! anywhere else (the rules are in `mod.rs`).
//!
//! Must never: cut bytes that a later commit follows; accept a segment whose header is not its
//! own.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::frame::{self, GROUP_HEADER, Pos, SEG_HEADER};
use super::index::{Index, Seg};
use super::{DAMAGED_HINT, damaged, io_at, seg_name, sync_dir};
use crate::store::StoreError;

/// Segment ids in `dir`, ascending (none if `dir` does not exist).
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(dir, e)),
    };
    let mut ids = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_at(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".seg")
            && hex.len() == 16
            && let Ok(id) = u64::from_str_radix(hex, 16)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Makes segment `id`: its header is written and synced under a temporary name
/// (`….seg.new`, which start-up removes), then renamed into place, so a failed or interrupted
/// roll never leaves a segment without its header. One left in place with nothing after its
/// header (the directory sync failed after the rename) is taken as it is.
pub(super) fn create_segment(dir: &Path, id: u64) -> Result<File, StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(seg_name(id));
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        && f.metadata().is_ok_and(|m| m.len() == SEG_HEADER)
        && check_header(&f, &path, id).is_ok()
    {
        sync_dir(dir)?;
        return Ok(f);
    }
    let tmp = dir.join(format!("{}.new", seg_name(id)));
    let _ = std::fs::remove_file(&tmp);
    let made = (|| {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&frame::segment_header(id))?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)?;
        Ok(f)
    })();
    match made {
        Ok(f) => {
            sync_dir(dir)?;
            Ok(f)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_at(&path, e))
        }
    }
}

/// Reads segment `id` from `from` into the index; answers its valid length. In the `last`
/// segment a torn or unfinished tail is cut off; anywhere else damage refuses.
pub(super) fn replay(
    dir: &Path,
    id: u64,
    from: u64,
    last: bool,
    log_gen: u64,
    idx: &mut Index,
) -> Result<u64, StoreError> {
    let path = dir.join(seg_name(id));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(last)
        .open(&path)
        .map_err(|e| io_at(&path, e))?;
    let size = file.metadata().map_err(|e| io_at(&path, e))?.len();
    check_header(&file, &path, id)?;
    if from > size {
        return Err(damaged(
            &path,
            format!("{size} bytes, the checkpoint continues at byte {from}"),
        ));
    }
    let file = Arc::new(file);
    idx.segs.entry(id).or_insert_with(|| Seg {
        file: file.clone(),
        len: from,
        subs: HashMap::new(),
    });
    let mut off = from;
    // The groups of a commit not finished yet: (position, payload).
    let mut chain: Vec<(Pos, Vec<u8>)> = Vec::new();
    // Why the tail from the end of the last whole commit is cut off, if it is.
    let mut cut: Option<String> = None;
    // The generation of the commit `chain` belongs to.
    let mut chain_gen = None;
    while off < size {
        let mut h = [0u8; GROUP_HEADER];
        if off + GROUP_HEADER as u64 > size {
            if !last {
                return Err(damaged(
                    &path,
                    format!("a group header cut short at byte {off}"),
                ));
            }
            cut = Some("a group header cut short".into());
            break;
        }
        file.read_exact_at(&mut h, off)
            .map_err(|e| io_at(&path, e))?;
        let g = frame::parse_group_header(&h);
        let end = off + GROUP_HEADER as u64 + g.map_or(0, |g| g.len as u64);
        let mut payload = Vec::new();
        let intact = match g {
            Some(g) if end <= size => {
                payload.resize(g.len as usize, 0);
                file.read_exact_at(&mut payload, off + GROUP_HEADER as u64)
                    .map_err(|e| io_at(&path, e))?;
                frame::group_intact(&h, &payload)
            }
            _ => false,
        };
        if !intact {
            // Torn only in the last segment, and only if every intact group after the bad one
            // belongs to the one commit that was being written (a crash may write its pages in
            // any order): a later commit means this one was synced and answered, so it is
            // damage, never cut.
            let after = if last {
                intact_after(&file, off + 1, size).map_err(|e| io_at(&path, e))?
            } else {
                Vec::new()
            };
            // Its commit's generation: from the chain it continues, else its own header if the
            // magic survived, else the first intact group after it.
            let unfinished = chain_gen
                .or(g.map(|g| g.generation))
                .or(after.first().copied());
            let torn = last
                && after.iter().all(|g| Some(*g) == unfinished)
                && unfinished.is_none_or(|g| g > idx.generation);
            if !torn {
                return Err(damaged(&path, format!("a bad group at byte {off}")));
            }
            cut = Some(format!("a group cut short at byte {off}"));
            break;
        }
        let g = g.expect("intact groups parse");
        chain_gen = Some(g.generation);
        if g.flags & frame::REDB != 0 && g.generation > log_gen {
            if !last {
                return Err(damaged(
                    &path,
                    format!("an unfinished commit at byte {off} before the last segment"),
                ));
            }
            cut = Some("a commit whose redb part never committed".into());
            break;
        }
        chain.push((Pos { seg: id, off }, payload));
        off = end;
        if g.flags & frame::MORE == 0 {
            for (at, p) in chain.drain(..) {
                for r in frame::records(&p) {
                    let r = r.map_err(|_| {
                        damaged(
                            &path,
                            format!("a bad record in the group at byte {}", at.off),
                        )
                    })?;
                    idx.apply(&r, at);
                }
            }
            idx.generation = idx.generation.max(g.generation);
            chain_gen = None;
            if let Some(s) = idx.segs.get_mut(&id) {
                s.len = off;
            }
        }
    }
    if cut.is_none() && !chain.is_empty() {
        if !last {
            return Err(damaged(&path, "it ends inside a commit"));
        }
        cut = Some("a commit cut short".into());
    }
    let at = idx.segs.get(&id).map_or(from, |s| s.len);
    if let Some(why) = cut {
        // Kept beside the segment (unless it is all zeros), in case an operator wants to see
        // what was cut.
        let mut tail = vec![0u8; (size - at) as usize];
        file.read_exact_at(&mut tail, at)
            .map_err(|e| io_at(&path, e))?;
        let kept = if tail.iter().any(|b| *b != 0) {
            let p = dir.join(format!("{}.torn-{at}", seg_name(id)));
            match std::fs::write(&p, &tail) {
                Ok(()) => p.display().to_string(),
                Err(e) => format!("not kept: {e}"),
            }
        } else {
            "zeros, not kept".into()
        };
        tracing::warn!(
            path = %path.display(),
            dropped = size - at,
            kept,
            "cutting off the queue log's unfinished tail ({why}); it was never acknowledged"
        );
        file.set_len(at)
            .and_then(|_| file.sync_data())
            .map_err(|e| io_at(&path, e))?;
    }
    Ok(at)
}

/// Refuses `file` unless it starts with the header of segment `id`.
pub(super) fn check_header(file: &File, path: &Path, id: u64) -> Result<(), StoreError> {
    let mut head = [0u8; SEG_HEADER as usize];
    if file.read_exact_at(&mut head, 0).is_err() {
        return Err(damaged(path, "shorter than a segment header"));
    }
    match frame::parse_segment_header(&head) {
        Some(h) if h == id => Ok(()),
        Some(h) => Err(damaged(path, format!("its header names segment {h}"))),
        None => Err(StoreError::Refused(format!(
            "{} is not an evgrid queue segment (format {:?} expected); {DAMAGED_HINT}",
            path.display(),
            String::from_utf8_lossy(&frame::SEG_MAGIC[..12])
        ))),
    }
}

/// The generations of the intact groups of `file` that start at or after `from`, in order:
/// found by their magic and proven by their CRC (start-up only: reads the rest of the file).
pub(super) fn intact_after(file: &File, from: u64, size: u64) -> std::io::Result<Vec<u64>> {
    let mut rest = vec![0u8; size.saturating_sub(from) as usize];
    file.read_exact_at(&mut rest, from)?;
    let magic = frame::GROUP_MAGIC.to_le_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + GROUP_HEADER <= rest.len() {
        if rest[i..i + 4] != magic {
            i += 1;
            continue;
        }
        let h: &[u8; GROUP_HEADER] = rest[i..i + GROUP_HEADER].try_into().unwrap();
        let g = frame::parse_group_header(h).expect("the magic was checked");
        let end = i + GROUP_HEADER + g.len as usize;
        if end <= rest.len() && frame::group_intact(h, &rest[i + GROUP_HEADER..end]) {
            found.push(g.generation);
            i = end;
        } else {
            i += 1;
        }
    }
    Ok(found)
}
