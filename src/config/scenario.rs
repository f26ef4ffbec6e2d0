//! Scenarios: several named parts of one run, each with its tests (a weighted mix) and a load
//! model of its own, started together or `start-after` a delay. They come from the config
//! file's `[[scenario]]` tables (the command line keeps one scenario: the run's own test and
//! model) and travel to agents inside [`PlanArgs`](super::PlanArgs), where each agent takes its
//! share of every scenario.
//!
//! Data enters as [`ScenarioArgs`] (decoded from TOML or a job's JSON); it leaves through
//! [`ScenarioArgs::checked`] as the scenario's [`Plan`] and start delay, or a [`UsageError`]
//! that names the scenario and the key to fix.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::UsageError;
use super::args::ModelArgs;
use super::plan::Plan;
use super::units::MAX_DURATION;
use super::units::{Secs, duration_from_secs};

/// Most scenarios in one run.
pub const MAX_SCENARIOS: usize = 32;

/// Longest scenario name.
const MAX_NAME: usize = 64;

/// One scenario of a run: its name, its tests and its load model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct ScenarioArgs {
    /// The scenario's name, shown in the results and used by `--threshold "scenario=NAME …"`
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Its tests: "blog::browse", a weighted mix "blog::browse=70 blog::checkout=30", or in a
    /// config file a table { "blog::browse" = 70, "blog::checkout" = 30 }
    #[arg(long, value_name = "TEST[=WEIGHT]")]
    #[serde(with = "tests_text", skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    /// Start the scenario this long after the run starts [default: at once]
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<Secs>,
    /// The scenario's load model (the same keys as the run's: users, hits, duration, stages,
    /// rate, rate-stages, think-time, ramp-up, max-users).
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelArgs,
}

impl ScenarioArgs {
    /// The option a problem of this scenario's key `key` is reported under.
    fn option(&self, key: &str) -> String {
        format!("[[scenario]] {:?}: {key}", self.name)
    }

    /// The scenario's checked plan (its share of it on this process) and how long after the run
    /// starts it starts.
    pub(crate) fn checked(
        &self,
        share: Option<(u64, u64)>,
        raw_events: bool,
    ) -> Result<(Plan, Duration), UsageError> {
        let plan = self.model.plan(share, raw_events).map_err(|e| UsageError {
            option: self.option(e.option.trim_start_matches('-')),
            message: format!(
                "scenario {:?}: {} (in a [[scenario]] table, write each option as a key without its dashes, e.g. duration = \"1m\")",
                self.name, e.message
            ),
        })?;
        let after = match self.start_after {
            None => Duration::ZERO,
            Some(s) if s.0 == 0.0 => Duration::ZERO,
            Some(s) => duration_from_secs(s.0)
                .ok()
                .filter(|d| *d <= MAX_DURATION)
                .ok_or_else(|| {
                    UsageError::new(
                        self.option("start-after"),
                        format!(
                            "scenario {:?}: invalid start-after {}: expected a duration from 0 to {}, e.g. \"1m\"",
                            self.name,
                            s.0,
                            humantime::format_duration(MAX_DURATION)
                        ),
                    )
                })?,
        };
        Ok((plan, after))
    }
}

/// Checks the scenarios' names (given, unique, short, letters, digits, `_`, `-` and `.`) and
/// their count, and that each names its tests.
pub(crate) fn check_names(scenarios: &[ScenarioArgs]) -> Result<(), UsageError> {
    if scenarios.len() > MAX_SCENARIOS {
        return Err(UsageError::new(
            "[[scenario]]",
            format!(
                "{} scenarios: at most {MAX_SCENARIOS} in one run",
                scenarios.len()
            ),
        ));
    }
    for (i, s) in scenarios.iter().enumerate() {
        let ok = !s.name.is_empty()
            && s.name.len() <= MAX_NAME
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(UsageError::new(
                "[[scenario]] name",
                format!(
                    "scenario number {} has {}: give each [[scenario]] a name of letters, digits, _, - and . (at most {MAX_NAME}), e.g. name = \"shoppers\"",
                    i + 1,
                    if s.name.is_empty() {
                        "no name".to_owned()
                    } else {
                        format!("the name {:?}", s.name)
                    }
                ),
            ));
        }
        if scenarios[..i].iter().any(|o| o.name == s.name) {
            return Err(UsageError::new(
                "[[scenario]] name",
                format!(
                    "two scenarios are named {:?}: give each a name of its own",
                    s.name
                ),
            ));
        }
        if s.tests.is_empty() {
            return Err(UsageError::new(
                s.option("tests"),
                format!(
                    "scenario {:?} has no tests: add tests = \"SUITE::TEST\" or a table of weights, e.g. tests = {{ \"blog::browse\" = 70, \"blog::search\" = 30 }}",
                    s.name
                ),
            ));
        }
    }
    Ok(())
}

/// A scenario's tests as a config file or a job gives them: one string (parts separated by
/// spaces), a list of strings, or a table of test names and weights; they travel as one string.
mod tests_text {
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::{Serialize, Serializer};
    use std::fmt;

    /// Most parts of one scenario's mix.
    const MAX_PARTS: usize = 1024;

    /// Writes the parts as one string.
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.join(" ").serialize(s)
    }

    struct Tests;

    impl<'de> Visitor<'de> for Tests {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a test name (\"blog::browse\"), a list of them, or a table of names and weights ({ \"blog::browse\" = 70 })",
            )
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let parts: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
            if parts.len() > MAX_PARTS {
                return Err(E::custom(format!("more than {MAX_PARTS} tests")));
            }
            Ok(parts)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                if out.len() >= MAX_PARTS {
                    return Err(de::Error::custom(format!("more than {MAX_PARTS} tests")));
                }
                out.extend(s.split_whitespace().map(str::to_owned));
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((name, weight)) = map.next_entry::<String, u64>()? {
                if out.len() >= MAX_PARTS {
                    return Err(de::Error::custom(format!("more than {MAX_PARTS} tests")));
                }
                out.push(format!("{name}={weight}"));
            }
            Ok(out)
        }
    }

    /// Reads a string, a list of strings or a table of weights.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(Tests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(toml_text: &str) -> Result<ScenarioArgs, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn tests_are_a_string_a_list_or_a_table_of_weights() {
        let a = scenario("name = \"a\"\ntests = \"x::y=2 x::z\"").expect("string");
        assert_eq!(a.tests, ["x::y=2", "x::z"]);
        let b = scenario("name = \"b\"\ntests = [\"x::y\", \"x::z=3\"]").expect("list");
        assert_eq!(b.tests, ["x::y", "x::z=3"]);
        let c = scenario("name = \"c\"\ntests = { \"x::y\" = 70, \"x::z\" = 30 }").expect("table");
        assert_eq!(c.tests, ["x::y=70", "x::z=30"]);
        let back: ScenarioArgs =
            serde_json::from_value(serde_json::to_value(&c).expect("json")).expect("back");
        assert_eq!(back, c);
        let e = scenario("name = \"d\"\ntests = { \"x::y\" = \"heavy\" }").expect_err("weight");
        assert!(e.to_string().contains("u64"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        let named = |n: &str| ScenarioArgs {
            name: n.into(),
            tests: vec!["x::y".into()],
            ..Default::default()
        };
        assert!(check_names(&[named("shoppers"), named("admins")]).is_ok());
        let e = check_names(&[named("a"), named("a")]).expect_err("twice");
        assert!(e.message.contains("two scenarios are named \"a\""), "{e}");
        let e = check_names(&[named("")]).expect_err("empty");
        assert!(e.message.contains("no name"), "{e}");
        let e = check_names(&[named("a b")]).expect_err("space");
        assert!(e.message.contains("\"a b\""), "{e}");
        let e = check_names(&[ScenarioArgs {
            name: "t".into(),
            ..Default::default()
        }])
        .expect_err("no tests");
        assert!(e.message.contains("has no tests"), "{e}");
    }

    #[test]
    fn a_scenarios_model_is_checked_with_its_name() {
        let s = ScenarioArgs {
            name: "admins".into(),
            tests: vec!["x::y".into()],
            model: ModelArgs {
                rate: Some("10/s".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = s.checked(None, false).expect_err("no duration");
        assert!(e.message.starts_with("scenario \"admins\": "), "{e}");
        assert!(e.option.contains("admins"), "{e:?}");
        let s = ScenarioArgs {
            start_after: Some(Secs(60.0)),
            model: ModelArgs {
                rate: Some("10/s".into()),
                duration: Some(Secs(5.0)),
                ..Default::default()
            },
            ..s
        };
        let (plan, after) = s.checked(Some((0, 2)), false).expect("plan");
        assert_eq!(after, Duration::from_secs(60));
        assert_eq!(plan.total_duration(), Some(Duration::from_secs(5)));
    }
}
