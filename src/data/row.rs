//! [`Row`]: one row of a data source as a test gets it from `t.data("NAME")`. Cheap to hand out
//! (a shared pointer) and read by column name: `row["email"]` or `row.get("email")`. Values are
//! text: a CSV field as written, a JSON string without its quotes, other JSON values (numbers,
//! booleans, arrays, objects) as their JSON text, `null` as the empty string.

use std::fmt;
use std::sync::Arc;

/// One row of test data: its values by column name.
#[derive(Clone)]
pub struct Row(Arc<RowData>);

struct RowData {
    source: Arc<str>,
    index: u64,
    fields: Box<[(Arc<str>, Box<str>)]>,
}

impl Row {
    /// A row of `source`, its number `index` (from 0, in file order), with its fields.
    pub(crate) fn new(source: Arc<str>, index: u64, fields: Vec<(Arc<str>, Box<str>)>) -> Row {
        Row(Arc::new(RowData {
            source,
            index,
            fields: fields.into_boxed_slice(),
        }))
    }

    /// The value of `column`, if the row has it.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.0
            .fields
            .iter()
            .find(|(c, _)| &**c == column)
            .map(|(_, v)| &**v)
    }

    /// The row's number in its file, from 0 (data rows only: a CSV's header is not counted).
    pub fn index(&self) -> u64 {
        self.0.index
    }

    /// The name of the data source the row comes from.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The columns and values, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.fields.iter().map(|(c, v)| (&**c, &**v))
    }

    /// The columns, in file order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.0.fields.iter().map(|(c, _)| &**c)
    }

    /// The row as a JSON object of text values (what an external runner's process receives).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.iter()
                .map(|(c, v)| (c.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect(),
        )
    }
}

/// `row["email"]`: the value of a column. A column the row does not have panics, which fails
/// the test (a failure, not a crash) with a message that names the source and its columns;
/// [`Row::get`] returns an `Option` instead.
impl std::ops::Index<&str> for Row {
    type Output = str;
    fn index(&self, column: &str) -> &str {
        match self.get(column) {
            Some(v) => v,
            None => panic!(
                "data '{}' has no column {column:?} (row {}); its columns are: {}",
                self.0.source,
                self.0.index,
                self.columns().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Row({} #{} ", self.0.source, self.0.index)?;
        f.debug_map().entries(self.iter()).finish()?;
        f.write_str(")")
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.0.source == other.0.source && self.0.index == other.0.index
    }
}

impl Eq for Row {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_by_column() {
        let row = Row::new(
            "accounts".into(),
            3,
            vec![
                ("email".into(), "a@x".into()),
                ("password".into(), "pw".into()),
            ],
        );
        assert_eq!(&row["email"], "a@x");
        assert_eq!(row.get("password"), Some("pw"));
        assert_eq!(row.get("nope"), None);
        assert_eq!(row.index(), 3);
        assert_eq!(
            row.to_json(),
            serde_json::json!({"email": "a@x", "password": "pw"})
        );
        let missing = std::panic::catch_unwind(|| row["emial"].to_owned()).expect_err("panics");
        let text = missing.downcast_ref::<String>().expect("message");
        assert!(
            text.contains("data 'accounts' has no column \"emial\"")
                && text.contains("email, password"),
            "{text}"
        );
    }
}
