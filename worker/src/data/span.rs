//! Which reads fetch a set of rows' images. A row of plain data is one object, one read. Rows
//! of packed data are byte ranges of shards, and the rows a step wants are runs of consecutive
//! packed rows (see `shard`), so ranges that touch are fetched as one read: a few requests per
//! step instead of one per image, which is what per-request latency and pricing charge for.

use std::ops::Range;

use crate::data::csv::{ByteRange, Row};

/// The most bytes one merged read asks for: a read's bytes are held until it is split.
pub const MAX_SPAN_BYTES: u64 = 16 << 20;

/// One read: the rows it serves (indices into the rows asked for) and, for packed rows, the
/// bytes of the object it fetches (the rows' ranges end to end) and each member's part of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub members: Vec<usize>,
    pub range: Option<Range<u64>>,
    /// Packed: the members' bytes within the read, in member order (empty for a whole object).
    pub parts: Vec<Range<usize>>,
}

impl Span {
    fn whole(member: usize) -> Self {
        Self { members: vec![member], range: None, parts: Vec::new() }
    }

    fn ranged(member: usize, range: ByteRange) -> Self {
        let whole_read = 0..range.length as usize;
        Self {
            members: vec![member],
            range: Some(range.offset..range.end()),
            parts: std::iter::once(whole_read).collect(),
        }
    }

    /// Adds `range` when it starts where this read ends and the read stays under the cap.
    fn extend(&mut self, member: usize, range: ByteRange) -> bool {
        let Some(current) = self.range.clone() else { return false };
        if current.end != range.offset || range.end() - current.start > MAX_SPAN_BYTES {
            return false;
        }
        let start = (current.end - current.start) as usize;
        self.members.push(member);
        self.parts.push(start..start + range.length as usize);
        self.range = Some(current.start..range.end());
        true
    }
}

/// The reads for `rows`, in the order of their first member. Every row is in exactly one span.
pub fn spans(rows: &[&Row]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut ranged: Vec<(usize, ByteRange)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row.range {
            None => spans.push(Span::whole(i)),
            Some(range) => ranged.push((i, range)),
        }
    }
    ranged.sort_by(|(a, ra), (b, rb)| (&rows[*a].path, ra.offset, a).cmp(&(&rows[*b].path, rb.offset, b)));
    let mut open: Option<Span> = None;
    for (i, range) in ranged {
        if let Some(span) = open.as_mut()
            && rows[span.members[0]].path == rows[i].path
            && span.extend(i, range)
        {
            continue;
        }
        spans.extend(open.replace(Span::ranged(i, range)));
    }
    spans.extend(open);
    spans.sort_by_key(|span| span.members.iter().min().copied());
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, range: Option<(u64, u64)>) -> Row {
        let range = range.map(|(offset, length)| ByteRange { offset, length });
        Row { line: 1, path: path.into(), range, name: "Ann".into(), label: 0 }
    }

    #[test]
    fn plain_rows_are_a_read_each() {
        let rows = [row("a.jpg", None), row("b.jpg", None)];
        let spans = spans(&rows.iter().collect::<Vec<_>>());
        assert_eq!(spans, vec![Span::whole(0), Span::whole(1)]);
    }

    #[test]
    fn touching_ranges_of_one_shard_are_one_read_whatever_the_order_asked() {
        let rows = [
            row("s1", Some((30, 10))),
            row("s0", Some((10, 5))),
            row("s1", Some((20, 10))),
            row("s0", Some((0, 10))),
            row("s0", Some((16, 4))), // a gap of one byte: a read of its own
        ];
        let spans = spans(&rows.iter().collect::<Vec<_>>());
        assert_eq!(
            spans,
            vec![
                Span { members: vec![2, 0], range: Some(20..40), parts: vec![0..10, 10..20] },
                Span { members: vec![3, 1], range: Some(0..15), parts: vec![0..10, 10..15] },
                Span { members: vec![4], range: Some(16..20), parts: std::iter::once(0..4).collect() },
            ]
        );
    }

    #[test]
    fn a_merged_read_stays_under_the_cap_and_a_row_asked_twice_is_served_twice() {
        let half = MAX_SPAN_BYTES / 2;
        let rows = [row("s", Some((0, half))), row("s", Some((half, half))), row("s", Some((2 * half, 1)))];
        let spans = spans(&rows.iter().collect::<Vec<_>>());
        assert_eq!(spans.iter().map(|s| s.members.clone()).collect::<Vec<_>>(), vec![vec![0, 1], vec![2]]);
        let twice = [row("s", Some((0, 5))), row("s", Some((0, 5)))];
        let spans = super::spans(&twice.iter().collect::<Vec<_>>());
        assert_eq!(spans.iter().map(|s| s.members.len()).sum::<usize>(), 2);
    }
}
