//! Dataset CSVs: rows of `image_path,name,label` (the tutorial's format, no header; a header row
//! is accepted). Parsing is plain logic over text so every rule is unit-tested; errors name the
//! file, the 1-based line and what was expected.

use std::collections::BTreeMap;

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
    pub name: String,
    pub label: usize,
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
    if let Some(n) = num_classes.filter(|&n| n > MAX_CLASSES) {
        let message = format!("num_classes = {n} is more than the {MAX_CLASSES} classes a dataset may have");
        return Err(Error::BadDataset { file: file.into(), message });
    }
    let mut parsed = ParsedCsv::default();
    // label -> (name, first line), to catch a label used for two people.
    let mut names_by_label: BTreeMap<usize, (String, usize)> = BTreeMap::new();
    let mut labels_by_name: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        if index == 0 && is_header(raw) {
            continue;
        }
        let row = parse_row(line, raw, num_classes).and_then(|row| {
            check_consistent(&row, &mut names_by_label, &mut labels_by_name)?;
            Ok(row)
        });
        match (row, on_bad_row) {
            (Ok(row), _) => parsed.rows.push(row),
            (Err(e), OnBadRow::Skip) => parsed.skipped.push(e),
            (Err(e), OnBadRow::Fail) => {
                return Err(Error::BadRow { file: file.into(), line: e.line, message: e.message });
            }
        }
        if parsed.rows.len() > MAX_ROWS {
            return Err(Error::BadDataset { file: file.into(), message: format!("more than {MAX_ROWS} rows") });
        }
    }
    if parsed.rows.is_empty() {
        let why = if parsed.skipped.is_empty() { "no rows" } else { "every row was bad and skipped" };
        return Err(Error::BadDataset {
            file: file.into(),
            message: format!("empty dataset ({why}): expected rows of `image_path,name,label`"),
        });
    }
    Ok(parsed)
}

fn is_header(raw: &str) -> bool {
    let last = raw.rsplit(',').next().unwrap_or("").trim().trim_matches('"');
    last.parse::<i64>().is_err() && last.eq_ignore_ascii_case("label")
}

fn parse_row(line: usize, raw: &str, num_classes: Option<usize>) -> std::result::Result<Row, RowError> {
    let err = |message: String| RowError { line, message };
    if raw.len() > MAX_LINE_BYTES {
        return Err(err(format!("line longer than {MAX_LINE_BYTES} bytes")));
    }
    let fields = split_fields(raw).map_err(|m| err(m.into()))?;
    let [path, name, label] = fields.as_slice() else {
        return Err(err(format!("expected 3 fields `image_path,name,label`, found {}", fields.len())));
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
    Ok(Row { line, path: path.clone(), name: name.clone(), label })
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
        assert_eq!(rows[1], Row { line: 2, path: "b.jpg".into(), name: "Bob".into(), label: 1 });
        let with_header = parse("path,name,label\na.jpg,Ann,0\n").unwrap().rows;
        assert_eq!(with_header.len(), 1);
        assert_eq!(with_header[0].line, 2);
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
        assert_eq!(err, "t.csv:2: expected 3 fields `image_path,name,label`, found 2");
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
    fn empty_datasets_are_an_error() {
        let err = parse("\n\n").unwrap_err().to_string();
        assert!(err.starts_with("dataset t.csv: empty dataset"), "{err}");
        let err = parse_rows("t.csv", "bad\n", None, OnBadRow::Skip).unwrap_err().to_string();
        assert!(err.contains("every row was bad"), "{err}");
    }
}
