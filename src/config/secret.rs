//! A value that must not be shown: a password given to a notifier (`--notify-email-password`).
//! It enters as option text (the command line, the environment, the config file) and leaves
//! only where it is used: its `Debug` form is `Secret(***)`, so that a log line or a panic
//! message that prints the run's arguments never shows it. It serialises as its text, because
//! the run's arguments carry it from the caller to the broker (never further: the broker takes
//! the notifiers out of the jobs it gives agents, and stores no arguments).

use serde::{Deserialize, Serialize};

/// A password or token: shown as `***`, serialised as its text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_text_and_serde_keeps_it() {
        let s: Secret = "hunter2".parse().expect("parse");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(serde_json::to_string(&s).expect("ser"), "\"hunter2\"");
        let back: Secret = serde_json::from_str("\"hunter2\"").expect("de");
        assert_eq!(back.expose(), "hunter2");
    }
}
