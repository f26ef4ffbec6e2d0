//! The run's configuration, at the bottom of the layout (README, "How it is built"): what a run is
//! asked to do, before anything runs. It imports nothing of the crate, and every other floor may
//! import it.
//!
//! - `args`: [`RunArgs`] and its parts, the arguments of a run declared once (the command
//!   line, the config file and the object that travels to agents), and the run id;
//! - `data`: the test data sources a run declares (`--data NAME=FILE[:STRATEGY]`);
//! - `plan`: the load plan those arguments describe (cycles, stages, an arrival rate);
//! - `scenario`: the named scenarios of a run, each with its tests and its own model;
//! - `units`: durations as options take them, microseconds and bytes as reports print them;
//! - `secret`: a password option's value, never shown ([`Secret`]);
//! - `signals`: the process's one handler of SIGINT and SIGTERM.
//!
//! Data enters as option values (text, numbers) and leaves as checked values (the plan,
//! `Duration`s) or as a [`UsageError`] that names what to fix. What a test sees of it
//! ([`TestCase::config`](crate::TestCase::config)) is public; the rest is the crate's.

mod args;
pub(crate) mod data;
pub(crate) mod plan;
mod scenario;
mod secret;
pub(crate) mod signals;
pub(crate) mod units;
mod web;

pub use args::{
    DEFAULT_REQUEST_TIMEOUT, EmailTls, ModelArgs, NotifyArgs, OutputOptions, PlanArgs, ReportArgs,
    RunArgs,
};
pub(crate) use args::{new_run_id, share_of};
pub use data::{DataSpec, Strategy};
pub use plan::Cycles;
pub use scenario::{MAX_SCENARIOS, ScenarioArgs};
pub use secret::Secret;
pub use units::Secs;
pub use web::{DEFAULT_WEB_ADDR, WebArgs};

/// A bad option value or combination: which option it is about, and a message that names it
/// and says how to fix it (the message is what is shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// The option the problem is about, as written on the command line (`--rate`), or the
    /// name of the value (`output`) when it has no option.
    pub option: String,
    /// What is wrong and how to fix it, naming the option.
    pub message: String,
}

impl UsageError {
    /// A problem with `option` described by `message` (which names the option).
    pub fn new(option: impl Into<String>, message: impl Into<String>) -> Self {
        UsageError {
            option: option.into(),
            message: message.into(),
        }
    }

    /// An invalid value of `option`: "invalid OPTION: DETAIL".
    pub fn invalid(option: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        let option = option.into();
        UsageError {
            message: format!("invalid {option}: {detail}"),
            option,
        }
    }
}

/// A value that does not parse (a duration, cycles, stages, a rate): what is wrong with it and
/// the forms expected. It does not know its option; [`UsageError::invalid`] adds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl From<String> for ValueError {
    fn from(s: String) -> Self {
        ValueError(s)
    }
}

impl From<&str> for ValueError {
    fn from(s: &str) -> Self {
        ValueError(s.to_owned())
    }
}

impl From<ValueError> for UsageError {
    /// A value error about the plan as a whole (no single option).
    fn from(e: ValueError) -> Self {
        UsageError::new("plan", e.0)
    }
}

/// The test (or the weighted mix) of a run as it travels and as a config file gives it: one
/// string, its parts separated by spaces (`"blog::browse=70 blog::search=30"`), or a list.
pub(crate) mod mix_text {
    use serde::{Deserializer, Serializer};

    /// Writes the parts as one string (one test: its name, as before mixes).
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.join(" "))
    }

    /// Reads one string (split at spaces) or a list of strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let parts = super::one_or_many::deserialize(d)?;
        Ok(parts
            .iter()
            .flat_map(|p| p.split_whitespace())
            .map(str::to_owned)
            .collect())
    }
}

/// A repeatable option in a config file or a job: one value or a list of them.
pub(crate) mod one_or_many {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a string (an output name such as \"stdout\", a threshold, a file pattern), or a list of them"
    )]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    /// Reads one string or a list of them (`null`: none).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(v)) => vec![v],
            Some(OneOrMany::Many(v)) => v,
        })
    }
}
