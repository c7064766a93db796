//! A byte stream cut into lines of bounded length, as it arrives: a CSV of any size is checked
//! line by line without being held whole, and one endless line costs at most the bound.

/// One line of input, without its `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Complete(&'a [u8]),
    /// Longer than the bound: reported as soon as the bound is passed, and the rest of the line
    /// is discarded as it arrives.
    TooLong,
}

#[derive(Debug)]
pub struct LineSplitter {
    max_bytes: usize,
    /// The start of a line that continues in the next chunk.
    pending: Vec<u8>,
    /// Inside a line already reported as too long.
    discarding: bool,
}

impl LineSplitter {
    /// Lines of up to `max_bytes` (a `\r` before the `\n` is allowed beyond it).
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, pending: Vec::new(), discarding: false }
    }

    /// Feeds the next chunk; `each` sees every line it completes, in order, and may stop the
    /// stream with an error.
    pub fn push<E>(&mut self, chunk: &[u8], mut each: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let (piece, ended) = match end {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = end.map_or(&[][..], |i| &rest[i + 1..]);
            if self.discarding {
                self.discarding = !ended;
                continue;
            }
            if self.pending.len() + piece.len() > self.max_bytes + 1 {
                self.pending.clear();
                self.discarding = !ended;
                each(Line::TooLong)?;
                continue;
            }
            if !ended {
                self.pending.extend_from_slice(piece);
            } else if self.pending.is_empty() {
                each(Line::Complete(piece))?;
            } else {
                self.pending.extend_from_slice(piece);
                let line = std::mem::take(&mut self.pending);
                each(Line::Complete(&line))?;
            }
        }
        Ok(())
    }

    /// The end of the input: a last line without `\n` is still a line.
    pub fn finish<E>(self, mut each: impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        if !self.pending.is_empty() { each(Line::Complete(&self.pending)) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut record = |line: Line<'_>| {
            out.push(match line {
                Line::Complete(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Line::TooLong => "<too long>".into(),
            });
            Ok::<(), ()>(())
        };
        let mut splitter = LineSplitter::new(max);
        for chunk in chunks {
            splitter.push(chunk, &mut record).unwrap();
        }
        splitter.finish(&mut record).unwrap();
        out
    }

    #[test]
    fn lines_split_across_chunks_as_str_lines_would() {
        assert_eq!(split(&[b"a,b\nc", b",d\n", b"e"], 10), ["a,b", "c,d", "e"]);
        assert_eq!(split(&[b"a\n\nb\n"], 10), ["a", "", "b"]);
        assert_eq!(split(&[b"a\r\n", b"b\r", b"\n"], 1), ["a\r", "b\r"]);
        let text = b"x,1\n\ny,2\r\nlast";
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(split(&[a, b], 10), ["x,1", "", "y,2\r", "last"], "cut at {cut}");
        }
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped_without_being_kept() {
        let long = vec![b'x'; 50];
        assert_eq!(split(&[b"ok\n", &long, &long, b"\nnext\n"], 8), ["ok", "<too long>", "next"]);
        assert_eq!(split(&[&long], 8), ["<too long>"]);
    }

    #[test]
    fn an_error_stops_at_the_first_bad_line() {
        let mut seen = 0;
        let mut splitter = LineSplitter::new(8);
        let result = splitter.push(b"a\nbad\nc\n", |line| {
            seen += 1;
            if line == Line::Complete(b"bad") { Err("stop") } else { Ok(()) }
        });
        assert_eq!((result, seen), (Err("stop"), 2));
    }
}
