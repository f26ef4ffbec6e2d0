//! Reading a data file into rows: CSV with a header line (every row as many fields as the
//! header), a JSON array of objects, or JSON lines (one object per line, blank lines skipped).
//! The format comes from the extension (`.csv`; `.json`; `.jsonl`, `.ndjson`), else from the
//! first character (`[` an array, `{` JSON lines, anything else CSV).
//!
//! Bounded before anything is allocated: a file of at most [`MAX_FILE_BYTES`], at most
//! [`MAX_ROWS`] rows of at most [`MAX_COLUMNS`] columns. A JSON array is read one object at a
//! time, so its rows cost what they hold, not a parsed tree of the whole file.
//!
//! Data enters as a path; rows leave, or a [`LoadError`] that names the file, the line and the
//! fix.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use super::row::Row;

/// Largest data file read (256 MiB).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Most rows of one data source.
pub const MAX_ROWS: usize = 10_000_000;
/// Most columns of one row.
pub const MAX_COLUMNS: usize = 1024;
/// Most memory the rows of one source may take once loaded (estimated while reading: a row and
/// each of its fields cost more than their text), so that a small file of many tiny fields
/// cannot take many times its size.
pub const MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

/// Estimated memory of one loaded row of `fields` fields holding `text` bytes of values.
fn row_cost(fields: usize, text: usize) -> u64 {
    // The row (its header, its shared pointer) and each field (a shared column name and a
    // boxed value: two fat pointers and the allocation's header).
    64 + fields as u64 * 48 + text as u64
}

/// The memory the rows read so far take, against [`MAX_MEMORY_BYTES`].
#[derive(Default)]
struct Budget(u64);

impl Budget {
    fn add(&mut self, fields: usize, text: usize) -> Result<(), LoadError> {
        self.0 = self.0.saturating_add(row_cost(fields, text));
        if self.0 > MAX_MEMORY_BYTES {
            return Err(LoadError(format!(
                "its rows would take more than {} MiB of memory once loaded (each field costs about 48 bytes beside its text): keep only the columns and rows the test needs",
                MAX_MEMORY_BYTES >> 20
            )));
        }
        Ok(())
    }
}

/// Why a data file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// The formats of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonArray,
    JsonLines,
}

/// Reads the rows of source `name` from `path`; with `sha256`, the file's content must have
/// that SHA-256 (hex), as a file shipped to an agent must.
pub fn load(name: &str, path: &Path, sha256: Option<&str>) -> Result<Vec<Row>, LoadError> {
    let shown = path.display();
    let bad = |what: String| LoadError(format!("data '{name}': {shown}: {what}"));
    // Only a regular file: a FIFO would block the open, a device never end.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(bad(
                "not a regular file (a directory, a FIFO or a device): give a data file: --data NAME=FILE[:STRATEGY]"
                    .into(),
            ));
        }
        _ => {}
    }
    let file = std::fs::File::open(path).map_err(|e| {
        bad(format!(
            "cannot read it ({e}); give an existing file: --data {name}=FILE[:STRATEGY]"
        ))
    })?;
    let len = file
        .metadata()
        .map_err(|e| bad(format!("cannot read it ({e})")))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(bad(format!(
            "{len} bytes: a data file has at most {} MiB; split it, or keep only the rows the test needs",
            MAX_FILE_BYTES >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read it ({e})")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(format!(
            "more than {} MiB: a data file has at most that",
            MAX_FILE_BYTES >> 20
        )));
    }
    if let Some(want) = sha256 {
        use sha2::Digest as _;
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != want {
            return Err(bad(format!("its SHA-256 is {got}, the run shipped {want}")));
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| bad(format!("not UTF-8 text ({e}); save it as UTF-8")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(bad(
            "the file is empty: a data file needs rows (a CSV: a header line, then at least one row)"
                .into(),
        ));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let first = text.trim_start().chars().next();
    let format = match ext.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl" | "ndjson") => Format::JsonLines,
        Some("json") if first == Some('[') => Format::JsonArray,
        Some("json") => Format::JsonLines,
        _ => match first {
            Some('[') => Format::JsonArray,
            Some('{') => Format::JsonLines,
            _ => Format::Csv,
        },
    };
    let source: Arc<str> = Arc::from(name);
    let rows = match format {
        Format::Csv => csv_rows(&source, text),
        Format::JsonArray => json_array_rows(&source, text),
        Format::JsonLines => json_lines_rows(&source, text),
    }
    .map_err(|e| bad(e.0))?;
    if rows.is_empty() {
        return Err(bad(match format {
            Format::Csv => "a header line but no rows: add at least one row".into(),
            _ => "no rows: add at least one object".into(),
        }));
    }
    Ok(rows)
}

fn too_many_rows() -> LoadError {
    LoadError(format!(
        "more than {MAX_ROWS} rows: a data source has at most that many"
    ))
}

fn csv_rows(source: &Arc<str>, text: &str) -> Result<Vec<Row>, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| LoadError(format!("cannot read the header line: {e}")))?
        .clone();
    if header.len() > MAX_COLUMNS {
        return Err(LoadError(format!(
            "{} columns: at most {MAX_COLUMNS}",
            header.len()
        )));
    }
    let mut columns: Vec<Arc<str>> = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        if h.is_empty() {
            return Err(LoadError(format!(
                "column {} of the header line has no name: the first line names the columns",
                i + 1
            )));
        }
        if columns.iter().any(|c| &**c == h) {
            return Err(LoadError(format!(
                "column {h:?} is named twice in the header line"
            )));
        }
        columns.push(Arc::from(h));
    }
    let mut rows = Vec::new();
    let mut budget = Budget::default();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => LoadError(format!(
                "line {} has {len} field{}, the header line has {expected_len}: give every row as many fields as the header (quote fields that hold a comma)",
                pos.as_ref().map_or(0, |p| p.line()),
                if *len == 1 { "" } else { "s" }
            )),
            _ => LoadError(format!("{e}")),
        })?;
        if rows.len() >= MAX_ROWS {
            return Err(too_many_rows());
        }
        budget.add(record.len(), record.as_slice().len())?;
        let fields = columns
            .iter()
            .cloned()
            .zip(record.iter().map(Box::<str>::from))
            .collect();
        rows.push(Row::new(source.clone(), rows.len() as u64, fields));
    }
    Ok(rows)
}

/// Column names of a JSON source, shared by its rows.
#[derive(Default)]
struct Names(HashMap<String, Arc<str>>);

impl Names {
    fn get(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.0.get(&name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name.as_str());
        // Bounded by the file's size: a name is interned once.
        self.0.insert(name, n.clone());
        n
    }
}

fn json_row(
    source: &Arc<str>,
    index: usize,
    object: serde_json::Map<String, serde_json::Value>,
    names: &mut Names,
    budget: &mut Budget,
) -> Result<Row, LoadError> {
    if object.len() > MAX_COLUMNS {
        return Err(LoadError(format!(
            "{} fields: at most {MAX_COLUMNS}",
            object.len()
        )));
    }
    let fields: Vec<(Arc<str>, Box<str>)> = object
        .into_iter()
        .map(|(k, v)| {
            let v: Box<str> = match v {
                serde_json::Value::String(s) => s.into(),
                serde_json::Value::Null => "".into(),
                other => other.to_string().into(),
            };
            (names.get(k), v)
        })
        .collect();
    budget.add(fields.len(), fields.iter().map(|(_, v)| v.len()).sum())?;
    Ok(Row::new(source.clone(), index as u64, fields))
}

fn json_lines_rows(source: &Arc<str>, text: &str) -> Result<Vec<Row>, LoadError> {
    let mut names = Names::default();
    let mut budget = Budget::default();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            return Err(too_many_rows());
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| {
                LoadError(format!(
                    "line {}: {e}: JSON lines hold one object per line, e.g. {{\"email\": \"a@example.com\"}}",
                    i + 1
                ))
            })?;
        let row = json_row(source, rows.len(), object, &mut names, &mut budget)
            .map_err(|e| LoadError(format!("line {}: {}", i + 1, e.0)))?;
        rows.push(row);
    }
    Ok(rows)
}

fn json_array_rows(source: &Arc<str>, text: &str) -> Result<Vec<Row>, LoadError> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};

    /// Reads the array one object at a time.
    struct Rows<'a> {
        source: &'a Arc<str>,
        rows: &'a mut Vec<Row>,
    }
    impl<'de> Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut names = Names::default();
            let mut budget = Budget::default();
            loop {
                if self.rows.len() >= MAX_ROWS {
                    return Err(serde::de::Error::custom(too_many_rows()));
                }
                let Some(v) = seq.next_element::<serde_json::Value>()? else {
                    return Ok(());
                };
                let serde_json::Value::Object(object) = v else {
                    return Err(serde::de::Error::custom(format!(
                        "element {} of the array is not an object: a JSON data file is an array of objects, e.g. [{{\"email\": \"a@example.com\"}}]",
                        self.rows.len() + 1
                    )));
                };
                let row = json_row(
                    self.source,
                    self.rows.len(),
                    object,
                    &mut names,
                    &mut budget,
                )
                .map_err(serde::de::Error::custom)?;
                self.rows.push(row);
            }
        }
    }
    impl<'de> DeserializeSeed<'de> for Rows<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut rows = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    Rows {
        source,
        rows: &mut rows,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| LoadError(format!("{e}")))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_budgeted_and_only_regular_files_are_read() {
        let mut b = Budget::default();
        // A row of 1 024 empty fields costs ~48 KiB: 21 000 of them pass the budget, not 23 000.
        for _ in 0..21_000 {
            b.add(1024, 0).expect("within the budget");
        }
        let e = (0..2_000)
            .try_for_each(|_| b.add(1024, 0))
            .expect_err("over the budget");
        assert!(e.0.contains("MiB of memory"), "{}", e.0);
        // A FIFO is refused before it is opened (an open would block).
        let dir = std::env::temp_dir().join(format!("loads-data-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let fifo = dir.join("rows.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo");
        let e = load("a", &fifo, None).expect_err("a FIFO");
        assert!(e.0.contains("not a regular file"), "{}", e.0);
        let e = load("a", &dir, None).expect_err("a directory");
        assert!(e.0.contains("not a regular file"), "{}", e.0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn file(name: &str, content: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("loads-data-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join(name);
        std::fs::write(&p, content).expect("write");
        p
    }

    #[test]
    fn csv_json_and_json_lines_give_the_same_rows() {
        let csv = file("a.csv", "email,n\na@x,1\n\"b,c@x\",2\n");
        let json = file(
            "a.json",
            r#"[{"email": "a@x", "n": 1}, {"email": "b,c@x", "n": "2"}]"#,
        );
        let lines = file(
            "a.jsonl",
            "{\"email\": \"a@x\", \"n\": 1}\n\n{\"email\": \"b,c@x\", \"n\": 2}\n",
        );
        for p in [csv, json, lines] {
            let rows = load("accounts", &p, None).expect("rows");
            assert_eq!(rows.len(), 2, "{}", p.display());
            assert_eq!(&rows[1]["email"], "b,c@x");
            assert_eq!(&rows[0]["n"], "1");
            assert_eq!(rows[1].index(), 1);
        }
        // Sniffed without an extension; nested values as JSON text, null as "".
        let p = file("sniffed", r#"[{"a": {"b": [1]}, "c": null, "d": true}]"#);
        let rows = load("s", &p, None).expect("rows");
        assert_eq!(
            (&rows[0]["a"], &rows[0]["c"], &rows[0]["d"]),
            (r#"{"b":[1]}"#, "", "true")
        );
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        let cases = [
            (
                "ragged.csv",
                "a,b\n1,2\n3\n",
                "line 3 has 1 field, the header line has 2",
            ),
            ("empty.csv", "", "the file is empty"),
            ("header.csv", "a,b\n", "a header line but no rows"),
            ("twice.csv", "a,a\n1,2\n", "named twice"),
            ("nameless.csv", "a,\n1,2\n", "has no name"),
            ("bad.jsonl", "{\"a\": 1}\n[1]\n", "line 2:"),
            (
                "notobj.json",
                "[{\"a\": 1}, 2]",
                "element 2 of the array is not an object",
            ),
            ("trailing.json", "[{\"a\": 1}] x", "trailing"),
            ("emptyarr.json", "[]", "no rows"),
        ];
        for (name, content, says) in cases {
            let e = load("d", &file(name, content), None).expect_err(name);
            assert!(e.0.contains(says), "{name}: {e}");
            assert!(e.0.starts_with("data 'd': "), "{name}: {e}");
        }
        let e = load("d", Path::new("/nonexistent/x.csv"), None).expect_err("missing");
        assert!(
            e.0.contains("cannot read it") && e.0.contains("--data d=FILE"),
            "{e}"
        );
        let p = file("hashed.csv", "a\n1\n");
        let e = load("d", &p, Some("00")).expect_err("hash");
        assert!(e.0.contains("the run shipped 00"), "{e}");
    }
}
