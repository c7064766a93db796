//! Dataset CSVs: rows of `image_path,name,label` (the tutorial's format, no header; a header row
//! is accepted), or, for packed data (`facectl dataset pack`), `shard_path,offset,length,name,label`:
//! the image is that byte range of the shard. Parsing is plain logic over lines, fed as the file
//! is read, so every rule is unit-tested and a bad line is reported without reading the rest;
//! errors name the file, the 1-based line and what was expected.

use std::collections::BTreeMap;

use crate::data::image::MAX_IMAGE_FILE_BYTES;
use crate::data::lines::{Line, LineSplitter};
use crate::data::pack::INDEX_HEADER;
use crate::error::{Error, Result};
use crate::job::OnBadRow;

/// Bounds that stop a hostile or mistaken CSV from exhausting memory.
pub const MAX_ROWS: usize = 5_000_000;
pub const MAX_LINE_BYTES: usize = 4096;
/// Labels index the class names and the model's output layer, so a mistyped label (`10^12`)
/// must be a bad row rather than a class count that allocates terabytes.
pub const MAX_CLASSES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the CSV, for error messages.
    pub line: usize,
    pub path: String,
    /// Packed data: the image is these bytes of the object at `path`, not the whole object.
    pub range: Option<ByteRange>,
    pub name: String,
    pub label: usize,
}

impl Row {
    /// What is wrong with this row's image, as the dataset reports it (by line).
    pub fn bad_image(&self, problem: &str) -> RowError {
        RowError { line: self.line, message: format!("image `{}`: {problem}", self.path) }
    }
}

/// Where a packed image lies inside its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

impl ByteRange {
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct ParsedCsv {
    pub rows: Vec<Row>,
    /// Rows dropped under `on_bad_row = "skip"`.
    pub skipped: Vec<RowError>,
}

/// Parses the CSV text. `num_classes`, when known, bounds the labels.
pub fn parse_rows(file: &str, text: &str, num_classes: Option<usize>, on_bad_row: OnBadRow) -> Result<ParsedCsv> {
    let mut parser = CsvParser::new(file, num_classes, on_bad_row)?;
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    lines.push(text.as_bytes(), |line| parser.push(line))?;
    lines.finish(|line| parser.push(line))?;
    parser.finish()
}

/// Parses a CSV one line at a time, so it is checked as it is read: in fail mode the first bad
/// line ends the read, whatever follows it.
#[derive(Debug)]
pub struct CsvParser {
    file: String,
    num_classes: Option<usize>,
    on_bad_row: OnBadRow,
    /// 1-based number of the last line pushed.
    line: usize,
    parsed: ParsedCsv,
    /// label -> (name, first line), to catch a label used for two people.
    names_by_label: BTreeMap<usize, (String, usize)>,
    labels_by_name: BTreeMap<String, (usize, usize)>,
}

impl CsvParser {
    pub fn new(file: &str, num_classes: Option<usize>, on_bad_row: OnBadRow) -> Result<Self> {
        if let Some(n) = num_classes.filter(|&n| n > MAX_CLASSES) {
            let message = format!("num_classes = {n} is more than the {MAX_CLASSES} classes a dataset may have");
            return Err(Error::BadDataset { file: file.into(), message });
        }
        Ok(Self {
            file: file.into(),
            num_classes,
            on_bad_row,
            line: 0,
            parsed: ParsedCsv::default(),
            names_by_label: BTreeMap::new(),
            labels_by_name: BTreeMap::new(),
        })
    }

    /// The next line of the file.
    pub fn push(&mut self, line: Line<'_>) -> Result<()> {
        self.line += 1;
        let row = match line {
            Line::TooLong => Err(RowError { line: self.line, message: too_long() }),
            Line::Complete(bytes) => match self.text(bytes) {
                Ok(raw) if raw.trim().is_empty() || raw.starts_with('#') => return Ok(()),
                Ok(raw) if self.line == 1 && is_header(raw) => return Ok(()),
                Ok(raw) => parse_row(self.line, raw, self.num_classes).and_then(|row| {
                    check_consistent(&row, &mut self.names_by_label, &mut self.labels_by_name)?;
                    Ok(row)
                }),
                Err(e) => Err(e),
            },
        };
        match (row, self.on_bad_row) {
            (Ok(row), _) => self.parsed.rows.push(row),
            (Err(e), OnBadRow::Skip) => self.parsed.skipped.push(e),
            (Err(e), OnBadRow::Fail) => {
                return Err(Error::BadRow { file: self.file.clone(), line: e.line, message: e.message });
            }
        }
        if self.parsed.rows.len() > MAX_ROWS {
            return Err(Error::BadDataset { file: self.file.clone(), message: format!("more than {MAX_ROWS} rows") });
        }
        Ok(())
    }

    /// The line as text: UTF-8 without the line ending, and without the byte-order mark some
    /// editors put at the start of a file (it would end up invisible inside the first path).
    fn text<'a>(&self, bytes: &'a [u8]) -> std::result::Result<&'a str, RowError> {
        let raw = std::str::from_utf8(bytes).map_err(|e| RowError {
            line: self.line,
            message: format!("not UTF-8 text (byte {} of the line): save the CSV as UTF-8", e.valid_up_to() + 1),
        })?;
        let raw = if self.line == 1 { raw.strip_prefix('\u{feff}').unwrap_or(raw) } else { raw };
        Ok(raw.trim_end_matches('\r'))
    }

    pub fn finish(self) -> Result<ParsedCsv> {
        if self.parsed.rows.is_empty() {
            let why = if self.parsed.skipped.is_empty() { "no rows" } else { "every row was bad and skipped" };
            return Err(Error::BadDataset {
                file: self.file,
                message: format!("empty dataset ({why}): expected rows of `image_path,name,label`"),
            });
        }
        Ok(self.parsed)
    }
}

fn too_long() -> String {
    format!("line longer than {MAX_LINE_BYTES} bytes")
}

fn is_header(raw: &str) -> bool {
    let last = raw.rsplit(',').next().unwrap_or("").trim().trim_matches('"');
    last.parse::<i64>().is_err() && last.eq_ignore_ascii_case("label")
}

fn parse_row(line: usize, raw: &str, num_classes: Option<usize>) -> std::result::Result<Row, RowError> {
    let err = |message: String| RowError { line, message };
    if raw.len() > MAX_LINE_BYTES {
        return Err(err(too_long()));
    }
    let fields = split_fields(raw).map_err(|m| err(m.into()))?;
    let (path, range, name, label) = match fields.as_slice() {
        [path, name, label] => (path, None, name, label),
        [path, offset, length, name, label] => (path, Some(parse_range(offset, length).map_err(err)?), name, label),
        _ => {
            return Err(err(format!(
                "expected 3 fields `image_path,name,label` (or 5 for packed data, `{}`), found {}",
                INDEX_HEADER.join(","),
                fields.len()
            )));
        }
    };
    if path.is_empty() {
        return Err(err("empty image path".into()));
    }
    if name.is_empty() {
        return Err(err("empty name".into()));
    }
    let label: usize = label.parse().map_err(|_| err(format!("label `{label}` is not a non-negative integer")))?;
    if let Some(n) = num_classes
        && label >= n
    {
        return Err(err(format!("label {label} out of range: expected 0..{n} (num_classes = {n})")));
    }
    if label >= MAX_CLASSES {
        return Err(err(format!(
            "label {label} too large: expected 0..{MAX_CLASSES} (the most classes a dataset may have)"
        )));
    }
    Ok(Row { line, path: path.clone(), range, name: name.clone(), label })
}

/// A packed row's byte range: whole numbers, a length of at least one byte and at most the
/// largest image a dataset may hold.
fn parse_range(offset: &str, length: &str) -> std::result::Result<ByteRange, String> {
    let offset: u64 = offset.parse().map_err(|_| format!("offset `{offset}` is not a non-negative integer"))?;
    let length: u64 = length.parse().map_err(|_| format!("length `{length}` is not a non-negative integer"))?;
    if length == 0 || length > MAX_IMAGE_FILE_BYTES {
        return Err(format!("length {length} out of range: expected 1..={MAX_IMAGE_FILE_BYTES} bytes"));
    }
    if offset.checked_add(length).is_none() {
        return Err(format!("offset {offset} + length {length} overflows"));
    }
    Ok(ByteRange { offset, length })
}

fn check_consistent(
    row: &Row,
    names_by_label: &mut BTreeMap<usize, (String, usize)>,
    labels_by_name: &mut BTreeMap<String, (usize, usize)>,
) -> std::result::Result<(), RowError> {
    let (name, first) = names_by_label.entry(row.label).or_insert((row.name.clone(), row.line));
    if *name != row.name {
        return Err(RowError {
            line: row.line,
            message: format!("label {} is `{}` here but `{name}` on line {first}", row.label, row.name),
        });
    }
    let (label, first) = labels_by_name.entry(row.name.clone()).or_insert((row.label, row.line));
    if *label != row.label {
        return Err(RowError {
            line: row.line,
            message: format!("`{}` has label {} here but {label} on line {first}", row.name, row.label),
        });
    }
    Ok(())
}

/// Splits one CSV line, honouring double quotes (a quoted field may hold commas; `""` is a quote).
fn split_fields(raw: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut fields = Vec::with_capacity(3);
    let mut field = String::new();
    let mut chars = raw.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field");
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

/// Labels below `num_classes` that no row has: output classes the model would never learn (or,
/// in a validation set, never be checked on), usually a mistake in the CSV.
pub fn labels_without_rows(rows: &[Row], num_classes: usize) -> Vec<usize> {
    let mut seen = vec![false; num_classes];
    rows.iter().filter(|row| row.label < num_classes).for_each(|row| seen[row.label] = true);
    seen.iter().enumerate().filter(|(_, seen)| !**seen).map(|(label, _)| label).collect()
}

/// Class names indexed by label; a label with no rows gets an empty name.
pub fn class_names(rows: &[Row], num_classes: usize) -> Vec<String> {
    let mut names = vec![String::new(); num_classes];
    for row in rows {
        if names[row.label].is_empty() {
            names[row.label] = row.name.clone();
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ParsedCsv> {
        parse_rows("t.csv", text, None, OnBadRow::Fail)
    }

    #[test]
    fn tutorial_rows_parse_with_or_without_header() {
        let rows = parse("a.jpg,Ann,0\nb.jpg,Bob,1\n").unwrap().rows;
        assert_eq!(rows[1], Row { line: 2, path: "b.jpg".into(), range: None, name: "Bob".into(), label: 1 });
        let with_header = parse("path,name,label\na.jpg,Ann,0\n").unwrap().rows;
        assert_eq!(with_header.len(), 1);
        assert_eq!(with_header[0].line, 2);
    }

    #[test]
    fn packed_rows_name_a_byte_range_of_their_shard() {
        let text =
            "shard_path,offset,length,name,label\nshard-00000.pack,0,2790,Ann,0\nshard-00000.pack,2790,17,Bob,1\n";
        let rows = parse(text).unwrap().rows;
        assert_eq!(rows[1].path, "shard-00000.pack");
        assert_eq!(rows[1].range, Some(ByteRange { offset: 2790, length: 17 }));
        assert_eq!((rows[1].line, rows[1].label), (3, 1));
        for (row, problem) in [
            ("s.pack,-1,5,Ann,0", "offset `-1` is not a non-negative integer"),
            ("s.pack,0,x,Ann,0", "length `x` is not a non-negative integer"),
            ("s.pack,0,0,Ann,0", "length 0 out of range"),
            ("s.pack,0,999999999,Ann,0", "length 999999999 out of range"),
            ("s.pack,18446744073709551615,2,Ann,0", "overflows"),
        ] {
            let err = parse(row).unwrap_err().to_string();
            assert!(err.starts_with("t.csv:1: ") && err.contains(problem), "{row}: {err}");
        }
    }

    #[test]
    fn quoted_fields_may_hold_commas() {
        let rows = parse("\"x, y.jpg\",\"Powell, Colin\",0\n").unwrap().rows;
        assert_eq!(rows[0].path, "x, y.jpg");
        assert_eq!(rows[0].name, "Powell, Colin");
    }

    #[test]
    fn malformed_rows_name_file_line_and_expectation() {
        let err = parse("a.jpg,Ann,0\nb.jpg,Bob\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "t.csv:2: expected 3 fields `image_path,name,label` (or 5 for packed data, \
             `shard_path,offset,length,name,label`), found 2"
        );
        let err = parse("a.jpg,Ann,zero\n").unwrap_err().to_string();
        assert_eq!(err, "t.csv:1: label `zero` is not a non-negative integer");
    }

    #[test]
    fn labels_out_of_range_or_inconsistent_with_names_are_refused() {
        let err = parse_rows("t.csv", "a.jpg,Ann,5\n", Some(5), OnBadRow::Fail).unwrap_err().to_string();
        assert!(err.contains("t.csv:1: label 5 out of range: expected 0..5"), "{err}");
        let err = parse("a.jpg,Ann,0\nb.jpg,Bob,0\n").unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: label 0 is `Bob` here but `Ann` on line 1");
        let err = parse("a.jpg,Ann,0\nb.jpg,Ann,1\n").unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: `Ann` has label 1 here but 0 on line 1");
        let err = parse("a.jpg,Ann,1000000\n").unwrap_err().to_string();
        assert!(err.starts_with("t.csv:1: label 1000000 too large"), "{err}");
    }

    #[test]
    fn skip_mode_counts_bad_rows_and_keeps_good_ones() {
        let parsed =
            parse_rows("t.csv", "a.jpg,Ann,0\nbroken\nc.jpg,Cy,x\nd.jpg,Dee,1\n", None, OnBadRow::Skip).unwrap();
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.skipped.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_path() {
        let rows = parse("\u{feff}a.jpg,Ann,0\nb.jpg,Bob,1\n").unwrap().rows;
        assert_eq!(rows[0].path, "a.jpg");
        let with_header = parse("\u{feff}path,name,label\na.jpg,Ann,0\n").unwrap().rows;
        assert_eq!((with_header.len(), with_header[0].line), (1, 2));
    }

    #[test]
    fn text_that_is_not_utf8_is_reported_by_line() {
        let mut parser = CsvParser::new("t.csv", None, OnBadRow::Fail).unwrap();
        parser.push(Line::Complete(b"a.jpg,Ann,0")).unwrap();
        let err = parser.push(Line::Complete(b"b.jpg,Bj\xf6rn,1")).unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: not UTF-8 text (byte 9 of the line): save the CSV as UTF-8");
    }

    #[test]
    fn overlong_lines_are_bad_rows_and_skip_mode_goes_on() {
        let long = format!("{},Ann,0\n", "p".repeat(MAX_LINE_BYTES + 10));
        let err = parse(&format!("a.jpg,Ann,0\n{long}")).unwrap_err().to_string();
        assert_eq!(err, format!("t.csv:2: line longer than {MAX_LINE_BYTES} bytes"));
        let parsed = parse_rows("t.csv", &format!("{long}b.jpg,Bob,1\n"), None, OnBadRow::Skip).unwrap();
        assert_eq!((parsed.skipped[0].line, parsed.rows[0].line), (1, 2));
    }

    #[test]
    fn labels_without_rows_are_listed() {
        let rows = parse("a.jpg,Ann,0\nb.jpg,Bob,3\n").unwrap().rows;
        assert_eq!(labels_without_rows(&rows, 4), vec![1, 2]);
        assert_eq!(labels_without_rows(&rows, 6), vec![1, 2, 4, 5]);
        assert!(labels_without_rows(&parse("a.jpg,Ann,0\n").unwrap().rows, 1).is_empty());
    }

    #[test]
    fn empty_datasets_are_an_error() {
        let err = parse("\n\n").unwrap_err().to_string();
        assert!(err.starts_with("dataset t.csv: empty dataset"), "{err}");
        let err = parse_rows("t.csv", "bad\n", None, OnBadRow::Skip).unwrap_err().to_string();
        assert!(err.contains("every row was bad"), "{err}");
    }
}
