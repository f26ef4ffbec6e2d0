//! The options of `loads run`, `loads broker` and `loads agent`, each declared once: one struct
//! per command (for `run`, the run's [`RunArgs`] and a few of its own) derives both the command
//! line (clap) and the config file (serde; the long option names are the keys, mapped to the
//! fields by clap's own table), [`merge`] lays the command line over the file in one generic
//! place, and unknown keys of a config file are refused all at once, each with the closest
//! known key.
//!
//! Data enters as arguments and TOML text; it leaves as the merged struct and, for `run`, as the
//! [`RunArgs`] of the run ([`run_args`]).

use anyhow::Context as _;
use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::CurveFlags;
use crate::config::{RunArgs, Secs};

/// Lays `cli` over `file`: a value given on the command line wins; one it leaves out (an
/// absent option, a flag not set, a repeatable option not given) is the file's.
pub(super) fn merge<T: Serialize + DeserializeOwned>(cli: &T, file: &T) -> anyhow::Result<T> {
    fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
        use serde_json::Value;
        match (base, top) {
            (Value::Object(b), Value::Object(t)) => {
                for (k, v) in t {
                    match v {
                        Value::Null | Value::Bool(false) => {}
                        Value::Array(a) if a.is_empty() => {}
                        v => overlay(b.entry(k).or_insert(Value::Null), v),
                    }
                }
            }
            (b, t) => *b = t,
        }
    }
    let mut merged = serde_json::to_value(file).context("options")?;
    overlay(&mut merged, serde_json::to_value(cli).context("options")?);
    serde_json::from_value(merged).context("options")
}

/// Reads the TOML config file at `path` (none: the defaults) of `loads COMMAND`, whose options
/// are `T`. Its keys are the long option names of the command (or an alias), plus `extra`
/// keys that are read by name (the CURVE keys); unknown ones are refused together, each with
/// the closest known key, and a value that does not decode is reported with its key.
pub(super) fn read_options<T: Serialize + DeserializeOwned + Default + Args>(
    path: Option<&Path>,
    command: &str,
    extra: &[&str],
    nested: &[(&str, NestedReader)],
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let invalid = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "invalid config file {}: {}
(its keys are the long options of `loads {command}`; see `loads {command} --help`)",
            path.display(),
            e.to_string().trim_end()
        )
    };
    // A Loads v1 INI file: refused, with the TOML that says the same.
    if let Some(equivalent) = super::v1_config::toml_equivalent(&text) {
        return Err(anyhow::anyhow!(
            "{} is a Loads v1 config file (INI, a [loads] section); loads reads TOML, whose keys are the long options of `loads {command}`. The same in TOML:\n\n{equivalent}\nSave that as a .toml file and give it with -c.",
            path.display()
        ));
    }
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| match bare_word(&text, &e) {
        Some(said) => invalid(&said),
        None => invalid(&e),
    })?;
    // Keys holding a list of tables of their own (`[[scenario]]`), each mapped by its reader.
    let mut lists = toml::Table::new();
    for (key, read) in nested {
        if let Some(v) = table.remove(*key) {
            lists.insert((*key).to_owned(), read(v).map_err(|e| invalid(&e))?);
        }
    }
    let extra: Vec<&str> = extra
        .iter()
        .copied()
        .chain(nested.iter().map(|(k, _)| *k))
        .collect();
    let mut mapped = map_keys::<T>(table, &extra).map_err(|e| invalid(&e))?;
    mapped.extend(lists);
    toml::Value::Table(mapped)
        .try_into()
        .map_err(|e| invalid(&e))
}

/// What to say when the TOML of a config file does not parse because a value is a bare word
/// (`users = ten`, `server-url = http://host`, v1's INI habit), where the TOML parser says
/// "invalid boolean, expected `true`" or "string values must be quoted": the line, the key,
/// and the same line written as TOML. `None` for any other parse error.
fn bare_word(text: &str, e: &toml::de::Error) -> Option<String> {
    let span = e.span()?;
    let value = text.get(span.clone())?.trim();
    let bare = value
        .chars()
        .next()
        .is_some_and(|c| !matches!(c, '"' | '\'' | '[' | '{'))
        && !matches!(value, "true" | "false" | "inf" | "nan")
        && !value.contains('\n');
    if !bare {
        return None;
    }
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..span.start].matches('\n').count() + 1;
    let key = text[line_start..span.start]
        .trim()
        .strip_suffix('=')?
        .trim();
    if key.is_empty() || key.contains(['=', '"', '\'', '[']) {
        return None;
    }
    Some(format!(
        "line {line}: key `{key}`: `{value}` is not a TOML value (the only bare words are true and false): write text in quotes, {key} = {value:?}, and numbers in digits"
    ))
}

/// A reader of a config key that holds a list of tables with keys of their own (see
/// [`read_options`]): it returns the list with its tables' keys mapped to their fields.
pub(super) type NestedReader = fn(toml::Value) -> Result<toml::Value, String>;

/// The config file's `[[scenario]]` tables: a list of tables whose keys are those of
/// [`ScenarioArgs`](crate::config::ScenarioArgs) (`name`, `tests`, `start-after` and the load
/// model's keys), each mapped and checked as the file's own keys are.
pub(super) fn read_scenarios(value: toml::Value) -> Result<toml::Value, String> {
    let toml::Value::Array(list) = value else {
        return Err(
            "key `scenario`: expected [[scenario]] tables (each with name, tests and a load model)"
                .into(),
        );
    };
    if list.len() > crate::config::MAX_SCENARIOS {
        return Err(format!(
            "{} [[scenario]] tables: at most {} in one run",
            list.len(),
            crate::config::MAX_SCENARIOS
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let toml::Value::Table(t) = v else {
            return Err(format!(
                "scenario number {}: expected a [[scenario]] table",
                i + 1
            ));
        };
        let name = t
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_owned();
        let mapped = map_keys::<crate::config::ScenarioArgs>(t, &[])
            .map_err(|e| format!("in [[scenario]] number {} ({name:?}): {e}", i + 1))?;
        out.push(toml::Value::Table(mapped));
    }
    Ok(toml::Value::Array(out))
}

/// Maps the keys of `table` to the fields of `T`: each option's long name (or an alias, or a
/// positional argument's id) and the `extra` keys read by name. Unknown keys are refused
/// together, each with the closest known key; a value that does not decode is reported with
/// its key.
fn map_keys<T: Serialize + DeserializeOwned + Default + Args>(
    table: toml::Table,
    extra: &[&str],
) -> Result<toml::Table, String> {
    // The keys: each option's long name (and its aliases), mapped to the field that holds it;
    // an option the config file cannot set (a field serde skips, such as `config`) is left out.
    let shape = serde_json::to_value(T::default()).map_err(|e| e.to_string())?;
    let cmd = T::augment_args(clap::Command::new("options"));
    // (name, field, listed in the error's key list)
    let mut names: Vec<(String, String, bool)> = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let probe = match arg.get_action().takes_values() {
            true => toml::Value::String("1".into()),
            false => toml::Value::Boolean(true),
        };
        if holds::<T>(&shape, id, probe) == Ok(false) {
            continue;
        }
        if let Some(long) = arg.get_long() {
            names.push((long.to_owned(), id.to_owned(), true));
        }
        for alias in arg.get_all_aliases().unwrap_or_default() {
            names.push((alias.to_owned(), id.to_owned(), false));
        }
        if arg.is_positional() {
            names.push((id.to_owned(), id.to_owned(), true));
        }
    }
    names.extend(extra.iter().map(|k| (k.to_string(), k.to_string(), true)));
    let mut mapped = toml::Table::new();
    let mut unknown = Vec::new();
    let mut given: Vec<(String, String)> = Vec::new();
    for (key, value) in table {
        match names.iter().find(|(n, _, _)| *n == key) {
            Some((_, id, _)) => {
                // A long name and its alias (`timeout`, `observer`...) set one option: one of
                // them would be lost.
                if let Some((other, _)) = given.iter().find(|(_, i)| i == id) {
                    return Err(format!(
                        "keys `{other}` and `{key}` set the same option: keep one"
                    ));
                }
                given.push((key.clone(), id.clone()));
                if let Some(at) = datetime_in(&value) {
                    return Err(format!(
                        "key `{key}`: {at} is a TOML date or time, not a value of this option; quote it to give text"
                    ));
                }
                // Each key alone first, so that a bad value is reported with its key.
                if let Err(e) = holds::<T>(&shape, id, value.clone()) {
                    return Err(format!("key `{key}`: {}", e.to_string().trim_end()));
                }
                let mut one = toml::Table::new();
                one.insert(id.clone(), value);
                insert_at(&mut mapped, place_of(&shape, id).unwrap_or_default(), one);
            }
            None => unknown.push(key),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = names
            .iter()
            .filter(|(_, _, listed)| *listed)
            .map(|(n, _, _)| n.as_str())
            .collect();
        let unknown: Vec<String> = unknown
            .iter()
            .map(|k| {
                // Aliases (the earlier spellings) are suggested too, since old files use them.
                let closest = names
                    .iter()
                    .map(|(n, _, _)| n)
                    .map(|c| (strsim::jaro_winkler(k, c), c))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                match closest {
                    Some((_, c)) => format!("`{k}` (did you mean `{c}`?)"),
                    None => format!("`{k}`"),
                }
            })
            .collect();
        let mut keys = known.clone();
        keys.sort();
        keys.dedup();
        return Err(format!(
            "unknown key{} {}; the keys are: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            keys.join(", ")
        ));
    }
    Ok(mapped)
}

/// Whether `T` keeps the field `id` set to `value` (read from a config file and written back):
/// `Ok(false)` for a field serde skips, the decoding error for a value that does not fit.
fn holds<T: Serialize + DeserializeOwned>(
    shape: &serde_json::Value,
    id: &str,
    value: toml::Value,
) -> Result<bool, toml::de::Error> {
    let at = place_of(shape, id).unwrap_or_default();
    let mut one = toml::Table::new();
    one.insert(id.to_owned(), value);
    let mut table = toml::Table::new();
    insert_at(&mut table, at.clone(), one);
    let back = serde_json::to_value(toml::Value::Table(table).try_into::<T>()?).unwrap_or_default();
    let mut v = &back;
    for part in &at {
        v = &v[part.as_str()];
    }
    Ok(!v[id].is_null())
}

/// The first TOML date or time in `value` (a config file's values are text, numbers, booleans
/// and lists of them; a date would be taken as text).
fn datetime_in(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(a) => a.iter().find_map(datetime_in),
        toml::Value::Table(t) => t.values().find_map(datetime_in),
        _ => None,
    }
}

/// The path of objects that holds the field `id` in `shape` (a struct's JSON): empty for a
/// top-level field, `["output_options"]` for a nested one; `None` when it is not there (a
/// field left out when unset sits at the top).
fn place_of(shape: &serde_json::Value, id: &str) -> Option<Vec<String>> {
    let serde_json::Value::Object(m) = shape else {
        return None;
    };
    if m.contains_key(id) {
        return Some(Vec::new());
    }
    m.iter().find_map(|(k, v)| {
        place_of(v, id).map(|mut p| {
            p.insert(0, k.clone());
            p
        })
    })
}

/// Inserts the entries of `one` into `table` under the tables named by `at`.
fn insert_at(table: &mut toml::Table, at: Vec<String>, one: toml::Table) {
    let mut slot = table;
    for part in at {
        slot = match slot
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(t) => t,
            _ => return,
        };
    }
    slot.extend(one);
}

/// Options of `loads run`: the [`RunArgs`] of the run (declared once, in `config::args`: the
/// command line, the config file and the job that travels to agents read the same structs)
/// and the options of this command only. [`merge`] lays the command line over the config file
/// and [`run_args`] finishes the run's arguments. Adding a run option touches its part of
/// `RunArgs`, the place that uses it, the docs and a test.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default)]
pub(super) struct RunOptions {
    /// TOML file with default values for these options (the command line wins)
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// Do not use the stdout output
    #[arg(short = 'q', long)]
    pub(super) quiet: bool,
    /// Run on this many agents of a cluster instead of in this process
    #[arg(short = 'a', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Cluster")]
    pub(super) agents: Option<u64>,
    /// The broker's front socket, with --agents [default: tcp://127.0.0.1:7780]
    #[arg(short = 'b', long, value_name = "ENDPOINT", help_heading = "Cluster")]
    pub(super) broker: Option<String>,
    /// With --agents: ship the files matching GLOB into each worker's test directory
    /// (repeatable); a local run only checks that each matches a file
    #[arg(long = "include-file", value_name = "GLOB", help_heading = "Cluster")]
    #[serde(deserialize_with = "crate::config::one_or_many::deserialize")]
    pub(super) include_files: Vec<String>,
    /// With --agents: start the run and return at once, printing its id
    #[arg(long, requires = "agents", help_heading = "Cluster")]
    #[serde(skip)]
    pub(super) detach: bool,
    /// The caller's keys, from the config file (the command line's are global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
    /// The live dashboard (`--web`).
    #[command(flatten)]
    #[serde(flatten)]
    pub(super) web: crate::config::WebArgs,
    /// The run's arguments.
    #[command(flatten)]
    #[serde(flatten)]
    pub(super) args: RunArgs,
}

/// Options of `loads broker`, declared once: the command line (clap) and the config file (serde,
/// the same long names as keys) read this struct, and [`merge`] lays one over the other.
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default)]
pub(super) struct BrokerArgs {
    /// TOML file with these options (keys: the long names, and curve-key); the command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// The agents' public keys (they register, take jobs, and their workers send results): a
    /// directory of .pub files, or a file with one key per line; with --curve-key
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_agents: Option<PathBuf>,
    /// The callers' public keys (they start runs, and see and stop their own runs only)
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_callers: Option<PathBuf>,
    /// Admins' public keys: callers that see and act on every caller's runs
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) admin_keys: Option<PathBuf>,
    /// Deprecated: keys admitted both as agents and as callers (use --authorized-agents and
    /// --authorized-callers, so that a caller's key cannot register as an agent)
    #[arg(long, value_name = "DIR|FILE")]
    pub(super) authorized_keys: Option<PathBuf>,
    /// Bind endpoints beyond loopback without keys (anyone who reaches them can run code on the
    /// agents): only on a network you trust
    #[arg(long)]
    pub(super) insecure: bool,
    /// Front socket, for callers [default: tcp://127.0.0.1:7780]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) frontend: Option<String>,
    /// Back socket, for agents [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) backend: Option<String>,
    /// Receiver, for the workers' results [default: tcp://127.0.0.1:7782]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) receiver: Option<String>,
    /// Publisher, for callers [default: tcp://127.0.0.1:7783]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) publisher: Option<String>,
    /// Heartbeat, for callers [default: tcp://127.0.0.1:7784]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) heartbeat: Option<String>,
    /// The SQLite file [default: $XDG_DATA_HOME/loads/broker.sqlite or ~/.local/share/loads/broker.sqlite]
    #[arg(long, value_name = "PATH")]
    pub(super) db: Option<PathBuf>,
    /// Drop agents silent for this long [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub(super) agent_timeout: Option<Secs>,
    /// A run's workers must be ready (binary fetched, worker started) within this long; past
    /// it the run starts without the late ones, or fails when none is ready [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub(super) ready_timeout: Option<Secs>,
    /// The broker's key pair, from the config file (the command line's is global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
    /// The cluster's web page (`--web`).
    #[command(flatten)]
    #[serde(flatten)]
    pub(super) web: crate::config::WebArgs,
}

/// Options of `loads agent`, declared once (see [`BrokerArgs`]).
#[derive(Args, Serialize, Deserialize, Debug, Default, Clone)]
#[serde(default)]
pub(super) struct AgentArgs {
    /// TOML file with these options (keys: the long names, curve-key and broker-key); the
    /// command line wins
    #[arg(short = 'c', long, value_name = "FILE")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// The broker's back socket [default: tcp://127.0.0.1:7781]
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) broker: Option<String>,
    /// Where test binaries are cached [default: ~/.cache/loads/binaries]
    #[arg(long, value_name = "DIR")]
    pub(super) cache_dir: Option<PathBuf>,
    /// Where each run gets its test directory [default: a loads-agent directory under the temp dir]
    #[arg(long, value_name = "DIR")]
    pub(super) test_dir: Option<PathBuf>,
    /// The agent's keys, from the config file (the command line's are global).
    #[arg(skip)]
    #[serde(flatten)]
    pub(super) curve: CurveFlags,
}

/// The run arguments of merged options (see [`merge`]): the test required, the outputs
/// resolved (`--quiet`), ready for the runners (and to travel to agents).
pub(super) fn run_args(o: &RunOptions) -> anyhow::Result<RunArgs> {
    if o.args.plan.test().is_empty() {
        anyhow::bail!(
            "no test given: `loads run SUITE::TEST` (see `loads list`), or [[scenario]] tables in a config file (-c FILE)"
        );
    }
    let mut args = o.args.clone();
    args.report = args.report.resolved(o.quiet);
    Ok(args)
}

/// `loads run`'s options: the command line `cli` over its config file (`--config`), read once.
pub(super) fn run_options(cli: &RunOptions) -> anyhow::Result<RunOptions> {
    let file: RunOptions = read_options(
        cli.config.as_deref(),
        "run",
        &CurveFlags::CONFIG_KEYS,
        &[("scenario", read_scenarios)],
    )?;
    let mut merged = merge(cli, &file)?;
    // --hits and --duration exclude each other: one given on the command line overrides both
    // of the file's.
    let model = &cli.args.plan.model;
    if model.hits.is_some() || model.duration.is_some() {
        merged.args.plan.model.hits = model.hits.clone();
        merged.args.plan.model.duration = model.duration;
    }
    merged.config = cli.config.clone();
    merged.detach = cli.detach;
    Ok(merged)
}
