//! Edit scripts: a new state as the previous one with a few small regions replaced.
//!
//! Edits scattered across a large state (a counter in the first and in the last record of a
//! document) leave a large unchanged stretch between them, which a single prefix-and-suffix delta
//! has to carry. An edit script keeps that stretch: it lists each replaced region as a [`Hunk`].
//!
//! Finding the hunks is one forward comparison of the two states: at each difference, the nearest
//! point where they agree again (an anchor of [`ANCHOR`] equal bytes, at most [`REACH`] bytes
//! further in either) closes the hunk. Edits larger than that reach, or more than
//! [`MAX_HUNKS`] of them, are left to the other payload kinds, so the search costs at most a
//! bounded number of probes per hunk on top of the comparison.

use serde::{Deserialize, Serialize};

use crate::DecodeError;

/// One replaced region of the previous state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    /// Bytes of the previous state kept before this region, counted from the end of the previous
    /// hunk's removed bytes (from the start for the first hunk).
    pub keep: u64,
    /// Bytes of the previous state removed.
    pub remove: u64,
    /// Bytes put in their place.
    #[serde(with = "serde_bytes")]
    pub insert: Vec<u8>,
}

/// Most hunks the encoder makes; a state with more differences is sent another way.
pub(crate) const MAX_HUNKS: usize = 64;
/// Most hunks a decoder accepts in one payload (checked before allocating).
pub const MAX_HUNKS_ON_WIRE: usize = 256;
/// How far past a difference (in either state) the next agreement is looked for.
const REACH: usize = 32;
/// Equal bytes that count as the states agreeing again.
const ANCHOR: usize = 8;

/// Block sizes the common ends are compared in, largest first: few library calls over long
/// equal stretches, then a short bytewise scan where they differ.
const BLOCKS: [usize; 2] = [4096, 64];

/// Length of the common prefix of `a` and `b`, compared a block at a time.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let limit = a.len().min(b.len());
    let mut at = 0;
    for block in BLOCKS {
        while at + block <= limit && a[at..at + block] == b[at..at + block] {
            at += block;
        }
    }
    at + a[at..limit].iter().zip(&b[at..limit]).take_while(|(x, y)| x == y).count()
}

/// Length of the common suffix of `a` and `b`, at most `limit`, compared a block at a time.
pub(crate) fn common_suffix(a: &[u8], b: &[u8], limit: usize) -> usize {
    let limit = limit.min(a.len()).min(b.len());
    let (a, b) = (&a[a.len() - limit..], &b[b.len() - limit..]);
    let mut at = limit;
    for block in BLOCKS {
        while at >= block && a[at - block..at] == b[at - block..at] {
            at -= block;
        }
    }
    limit - at + a[..at].iter().rev().zip(b[..at].iter().rev()).take_while(|(x, y)| x == y).count()
}

/// Whether `a` and `b` agree from their starts: on an anchor's length, or to both their ends.
fn agree(a: &[u8], b: &[u8]) -> bool {
    if a.len() >= ANCHOR && b.len() >= ANCHOR { a[..ANCHOR] == b[..ANCHOR] } else { a == b }
}

/// Where `a` and `b` (which differ at their first byte) agree again: bytes to skip in each,
/// nearest first.
fn resync(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    for distance in 1..=2 * REACH {
        for skip_a in distance.saturating_sub(REACH)..=distance.min(REACH) {
            let skip_b = distance - skip_a;
            if skip_a <= a.len() && skip_b <= b.len() && agree(&a[skip_a..], &b[skip_b..]) {
                return Some((skip_a, skip_b));
            }
        }
    }
    None
}

/// The hunks turning `old` into `new`, when there are at most [`MAX_HUNKS`] small ones.
pub(crate) fn find(old: &[u8], new: &[u8]) -> Option<Vec<Hunk>> {
    let mut hunks = Vec::new();
    let (mut at_old, mut at_new, mut kept_from) = (0, 0, 0);
    loop {
        let same = common_prefix(&old[at_old..], &new[at_new..]);
        at_old += same;
        at_new += same;
        if at_old == old.len() && at_new == new.len() {
            return Some(hunks);
        }
        if hunks.len() == MAX_HUNKS {
            return None;
        }
        let (remove, insert) = resync(&old[at_old..], &new[at_new..])?;
        hunks.push(Hunk {
            keep: (at_old - kept_from) as u64,
            remove: remove as u64,
            insert: new[at_new..at_new + insert].to_vec(),
        });
        at_old += remove;
        at_new += insert;
        kept_from = at_old;
    }
}

/// Bytes the hunks take on the wire, roughly (for choosing between payload kinds).
pub(crate) fn wire_size(hunks: &[Hunk]) -> usize {
    hunks.iter().map(|h| h.insert.len() + 6).sum::<usize>() + 2
}

/// `base` with `hunks` applied, refusing hunks that do not fit it and results over `max_bytes`.
pub(crate) fn apply(base: &[u8], hunks: &[Hunk], max_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    let bad = |what: String| DecodeError::BadDelta(format!("edit script: {what}"));
    // Checked in full before anything is copied: every region within the base, the result
    // within the limit.
    let (mut consumed, mut removed, mut inserted) = (0usize, 0usize, 0usize);
    for hunk in hunks {
        let (Ok(keep), Ok(remove)) = (usize::try_from(hunk.keep), usize::try_from(hunk.remove)) else {
            return Err(bad("region bounds overflow".into()));
        };
        consumed = consumed
            .checked_add(keep)
            .and_then(|c| c.checked_add(remove))
            .filter(|c| *c <= base.len())
            .ok_or_else(|| bad(format!("regions run past the end of a {}-byte state", base.len())))?;
        removed += remove;
        inserted = inserted.saturating_add(hunk.insert.len());
    }
    let size = (base.len() - removed).saturating_add(inserted);
    if size > max_bytes {
        return Err(bad(format!("patched payload of {size} bytes over the limit")));
    }
    let mut out = Vec::with_capacity(size);
    let mut at = 0;
    for hunk in hunks {
        let keep = hunk.keep as usize;
        out.extend_from_slice(&base[at..at + keep]);
        out.extend_from_slice(&hunk.insert);
        at += keep + hunk.remove as usize;
    }
    out.extend_from_slice(&base[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scattered_small_edits_are_one_hunk_each() {
        let old: Vec<u8> = (0..2_000u32).flat_map(|i| format!("{{\"id\":{i},\"value\":9}},").into_bytes()).collect();
        let text = String::from_utf8(old.clone()).unwrap_or_default();
        let new = text.replacen("\"value\":9", "\"value\":10", 1);
        let new = format!("{}\"value\":7}},", &new[..new.len() - "\"value\":9},".len()]).into_bytes();
        let hunks = find(&old, &new).unwrap_or_default();
        assert_eq!(hunks.len(), 2, "{hunks:?}");
        assert!(hunks.iter().all(|h| h.insert.len() <= 2), "{hunks:?}");
        assert_eq!(apply(&old, &hunks, usize::MAX), Ok(new));
    }

    #[test]
    fn too_many_or_too_large_edits_are_left_to_other_payloads() {
        let old = vec![0u8; 10_000];
        let mut many = old.clone();
        for at in (0..many.len()).step_by(100) {
            many[at] = 1;
        }
        assert_eq!(find(&old, &many), None);
        let mut large = old.clone();
        large[5_000..5_100].fill(1);
        assert_eq!(find(&old, &large), None);
    }

    #[test]
    fn hunks_that_do_not_fit_are_errors() {
        let base = b"0123456789";
        let hunk = |keep, remove| Hunk { keep, remove, insert: vec![b'x'] };
        for hunks in [vec![hunk(11, 0)], vec![hunk(5, 6)], vec![hunk(5, 0), hunk(5, 1)], vec![hunk(u64::MAX, 1)]] {
            assert!(apply(base, &hunks, usize::MAX).is_err(), "{hunks:?}");
        }
        assert!(apply(base, &[Hunk { keep: 0, remove: 0, insert: vec![0; 10] }], 19).is_err());
        assert_eq!(apply(base, &[hunk(2, 3), hunk(1, 0)], usize::MAX), Ok(b"01x5x6789".to_vec()));
    }

    proptest! {
        #[test]
        fn found_hunks_rebuild_the_new_state(
            old in prop::collection::vec(0u8..4, 0..400),
            edits in prop::collection::vec((0usize..400, 0usize..5, prop::collection::vec(0u8..4, 0..5)), 0..8),
        ) {
            let mut new = old.clone();
            for (at, remove, insert) in edits {
                let at = at.min(new.len());
                let end = (at + remove).min(new.len());
                new.splice(at..end, insert);
            }
            if let Some(hunks) = find(&old, &new) {
                prop_assert!(hunks.len() <= MAX_HUNKS);
                prop_assert_eq!(apply(&old, &hunks, usize::MAX), Ok(new));
            }
        }
    }
}
