//! Test data sources as a run declares them: `--data NAME=FILE[:STRATEGY]` on the command line,
//! `[[data]]` tables (`name`, `file`, `strategy`) in the config file, and the same object in
//! the job that travels to agents. A [`DataSpec`] names a source, its file and how its rows are
//! handed out ([`Strategy`]); the rows themselves are read and handed out by `crate::data`.
//!
//! Data enters as text (an option value, a TOML table, a job's JSON) and leaves as checked
//! specs, or as a [`ValueError`] that says what the forms are.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;

use super::ValueError;

/// Longest name of a data source.
pub const MAX_NAME: usize = 64;

/// Most data sources one run may declare.
pub const MAX_SOURCES: usize = 64;

/// How the rows of a data source are handed out to the tests that ask for one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Row after row, starting over after the last one (the default).
    #[default]
    Circular,
    /// A row drawn at random (uniformly) for every request.
    Random,
    /// Each row once in the whole run (across agents); when none is left, the request is an
    /// error `data 'NAME' exhausted`.
    Queue,
    /// As `queue`, but when none is left the user that asked stops (its hit is not counted).
    QueueStop,
    /// Each virtual user gets a row of its own, the same for its whole life; no two users
    /// (across agents) share one.
    PerUser,
}

impl Strategy {
    /// Every strategy, as written.
    pub const NAMES: &'static [&'static str] =
        &["circular", "random", "queue", "queue-stop", "per-user"];

    /// The strategy's name as written (`queue-stop`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Circular => "circular",
            Strategy::Random => "random",
            Strategy::Queue => "queue",
            Strategy::QueueStop => "queue-stop",
            Strategy::PerUser => "per-user",
        }
    }

    /// Whether each row goes to one user only in the whole run (`queue`, `queue-stop`,
    /// `per-user`): in a cluster such rows are leased from the broker.
    pub fn unique(self) -> bool {
        matches!(
            self,
            Strategy::Queue | Strategy::QueueStop | Strategy::PerUser
        )
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Ok(match s.trim() {
            "circular" => Strategy::Circular,
            "random" => Strategy::Random,
            "queue" => Strategy::Queue,
            "queue-stop" => Strategy::QueueStop,
            "per-user" => Strategy::PerUser,
            other => {
                return Err(ValueError(format!(
                    "unknown strategy {other:?}: expected one of {}",
                    Strategy::NAMES.join(", ")
                )));
            }
        })
    }
}

/// One data source of a run: `NAME=FILE[:STRATEGY]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The name tests ask for (`t.data("accounts")`): letters, digits, `_` and `-`, starting
    /// with a letter or `_`, at most [`MAX_NAME`] characters.
    pub name: String,
    /// The file: CSV with a header line, a JSON array of objects, or JSON lines (one object
    /// per line); relative to the current directory (in a cluster's worker: its test
    /// directory, where the file was shipped).
    pub file: String,
    /// How rows are handed out [default: circular].
    #[serde(default)]
    pub strategy: Strategy,
    /// SHA-256 of the file's content, set when the file is shipped to agents (the worker
    /// checks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Number of rows of the file, set when the file is shipped to agents (the broker leases
    /// the rows of `queue` and `per-user` sources by number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Whether `name` can name a data source (and an environment variable `LOADS_DATA_NAME`).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_name(name: &str) -> Result<(), ValueError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ValueError(format!(
            "invalid data name {name:?}: a name uses letters, digits, _ and - (starting with a letter or _), at most {MAX_NAME} characters, e.g. --data accounts=accounts.csv"
        )))
    }
}

impl DataSpec {
    /// A source `name` read from `file`, handed out by `strategy`.
    pub fn new(name: &str, file: &str, strategy: Strategy) -> Result<DataSpec, ValueError> {
        check_name(name)?;
        if file.trim().is_empty() {
            return Err(ValueError(format!(
                "data {name:?} has no file: --data {name}=FILE[:STRATEGY]"
            )));
        }
        Ok(DataSpec {
            name: name.to_owned(),
            file: file.to_owned(),
            strategy,
            sha256: None,
            rows: None,
        })
    }

    /// The name of the environment variable an external runner's process reads this
    /// source's row from: `LOADS_DATA_` and the name in capitals, `-` as `_`.
    pub fn env_name(&self) -> String {
        format!(
            "LOADS_DATA_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl FromStr for DataSpec {
    type Err = ValueError;

    /// `NAME=FILE[:STRATEGY]`: the text after the last `:` is the strategy when it names one;
    /// otherwise the whole is the file (a file name may hold a `:`).
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let Some((name, rest)) = s.split_once('=') else {
            return Err(ValueError(format!(
                "invalid --data {s:?}: expected NAME=FILE[:STRATEGY], e.g. accounts=accounts.csv:queue (strategies: {})",
                Strategy::NAMES.join(", ")
            )));
        };
        let name = name.trim();
        let (file, strategy) = match rest.rsplit_once(':') {
            Some((file, strategy)) => match strategy.parse::<Strategy>() {
                Ok(st) => (file, st),
                // A word that is no strategy is a typo, not part of a file name.
                Err(e)
                    if !strategy.is_empty()
                        && strategy
                            .chars()
                            .all(|c| c.is_ascii_alphabetic() || c == '-') =>
                {
                    return Err(ValueError(format!("invalid --data {s:?}: {e}")));
                }
                Err(_) => (rest, Strategy::default()),
            },
            None => (rest, Strategy::default()),
        };
        DataSpec::new(name, file, strategy)
            .map_err(|e| ValueError(format!("invalid --data {s:?}: {e}")))
    }
}

/// Checks a run's data sources together: at most [`MAX_SOURCES`], no name given twice (nor
/// two names that make one environment variable).
pub fn check_specs(specs: &[DataSpec]) -> Result<(), ValueError> {
    if specs.len() > MAX_SOURCES {
        return Err(ValueError(format!(
            "{} data sources given: at most {MAX_SOURCES}",
            specs.len()
        )));
    }
    for (i, a) in specs.iter().enumerate() {
        check_name(&a.name)?;
        if let Some(b) = specs[..i].iter().find(|b| b.env_name() == a.env_name()) {
            return Err(ValueError(if a.name == b.name {
                format!(
                    "data {:?} is given twice: give each name once (--data NAME=FILE[:STRATEGY])",
                    a.name
                )
            } else {
                format!(
                    "data names {:?} and {:?} differ only by - and _ or by case: rename one",
                    b.name, a.name
                )
            }));
        }
    }
    Ok(())
}

/// Reads the data sources of a config file or a job: a `NAME=FILE[:STRATEGY]` string, a table
/// (`name`, `file`, `strategy`, as `[[data]]` gives them), or a list of either (`null`: none).
pub(crate) fn deserialize_specs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<DataSpec>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a data source: \"NAME=FILE[:STRATEGY]\" or a table with name, file and strategy ([[data]]), or a list of them"
    )]
    enum One {
        Text(String),
        Table(DataSpec),
    }
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a data source: \"NAME=FILE[:STRATEGY]\" or a table with name, file and strategy ([[data]]), or a list of them"
    )]
    enum OneOrMany {
        // A list first: a struct would also take a list as its fields in order.
        Many(Vec<One>),
        One(One),
    }
    let items = match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(o)) => vec![o],
        Some(OneOrMany::Many(v)) => v,
    };
    items
        .into_iter()
        .map(|o| match o {
            One::Text(t) => t.parse::<DataSpec>().map_err(serde::de::Error::custom),
            One::Table(spec) => {
                DataSpec::new(&spec.name, &spec.file, spec.strategy)
                    .map_err(serde::de::Error::custom)?;
                Ok(spec)
            }
        })
        .collect()
}

/// `--data`'s value parser (clap).
pub(crate) fn parse_spec(s: &str) -> Result<DataSpec, String> {
    s.parse::<DataSpec>().map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_strategy() {
        let s: DataSpec = "accounts=data/accounts.csv:queue".parse().expect("spec");
        assert_eq!(
            (s.name.as_str(), s.file.as_str(), s.strategy),
            ("accounts", "data/accounts.csv", Strategy::Queue)
        );
        let s: DataSpec = "a=x.json".parse().expect("spec");
        assert_eq!(
            (s.file.as_str(), s.strategy),
            ("x.json", Strategy::Circular)
        );
        let s: DataSpec = "a=x.csv:queue-stop".parse().expect("spec");
        assert_eq!(s.strategy, Strategy::QueueStop);
        let s: DataSpec = "a=x.csv:per-user".parse().expect("spec");
        assert_eq!(s.strategy, Strategy::PerUser);
        // A colon inside a file name.
        let s: DataSpec = "a=dir:2024/x.csv".parse().expect("spec");
        assert_eq!(s.file, "dir:2024/x.csv");
        for (bad, says) in [
            ("accounts", "expected NAME=FILE"),
            ("a=x.csv:queu", "unknown strategy \"queu\""),
            ("=x.csv", "invalid data name"),
            ("1a=x.csv", "invalid data name"),
            ("a b=x.csv", "invalid data name"),
            ("a=", "has no file"),
            ("a=:queue", "has no file"),
        ] {
            let e = bad.parse::<DataSpec>().expect_err(bad);
            assert!(e.0.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_checked_together() {
        let a: DataSpec = "a-b=x.csv".parse().expect("spec");
        let b: DataSpec = "A_B=y.csv".parse().expect("spec");
        assert_eq!(a.env_name(), "LOADS_DATA_A_B");
        assert!(check_specs(std::slice::from_ref(&a)).is_ok());
        assert!(
            check_specs(&[a.clone(), a.clone()])
                .expect_err("twice")
                .0
                .contains("given twice")
        );
        assert!(
            check_specs(&[a, b])
                .expect_err("same env")
                .0
                .contains("differ only")
        );
    }

    #[test]
    fn specs_read_from_text_tables_and_lists() {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "deserialize_specs", default)]
            data: Vec<DataSpec>,
        }
        let w: W = toml::from_str(
            "[[data]]\nname = \"accounts\"\nfile = \"a.csv\"\nstrategy = \"queue\"\n[[data]]\nname = \"b\"\nfile = \"b.json\"\n",
        )
        .expect("tables");
        assert_eq!(w.data.len(), 2);
        assert_eq!(w.data[0].strategy, Strategy::Queue);
        assert_eq!(w.data[1].strategy, Strategy::Circular);
        let w: W = toml::from_str("data = \"a=x.csv:random\"").expect("text");
        assert_eq!(w.data[0].strategy, Strategy::Random);
        let w: W = toml::from_str("data = [\"a=x.csv\", \"b=y.csv\"]").expect("list");
        assert_eq!(w.data.len(), 2);
        assert!(
            toml::from_str::<W>("[[data]]\nname = \"a\"\nfile = \"x\"\nstrategy = \"nope\"\n")
                .is_err()
        );
        assert!(toml::from_str::<W>("[[data]]\nname = \"a b\"\nfile = \"x\"\n").is_err());
        let w: W = serde_json::from_str(
            r#"{"data":[{"name":"a","file":"x.csv","strategy":"per-user","sha256":"ab","rows":3}]}"#,
        )
        .expect("job");
        assert_eq!(w.data[0].rows, Some(3));
    }
}
