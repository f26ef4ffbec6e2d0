//! Run ids as people type them: like git's abbreviated hashes, a prefix of a run's id that no
//! other run shares stands for it (`loads report 6b10`). The prefix enters from the command
//! line; [`resolve_run`] asks the broker for the runs this caller may see
//! ([`CallerRequest::Runs`]) and returns the one full id, or a usage error that lists the
//! candidates of an ambiguous prefix or says that no run has it.

use crate::config::UsageError;
use crate::runner::RunError;
use crate::transport::client::BrokerClient;
use crate::transport::{CallerRequest, RunRow};

/// Most candidates an ambiguous prefix's error lists.
const MAX_CANDIDATES: usize = 10;

/// The id of the run that `given` names among the broker's runs: the run with that very id, or
/// the only one whose id starts with it.
pub fn resolve_run(client: &BrokerClient, given: &str) -> Result<String, RunError> {
    let v = client.call(&CallerRequest::Runs, None)?;
    let rows: Vec<RunRow> = serde_json::from_value(v["runs"].clone()).unwrap_or_default();
    pick(rows.iter().map(|r| r.run_id.as_str()), given)
        .map_err(|m| RunError::Usage(UsageError::new("RUN_ID", m)))
}

/// The id among `ids` that `given` names, or why none does.
fn pick<'a>(ids: impl Iterator<Item = &'a str> + Clone, given: &str) -> Result<String, String> {
    if given.is_empty() {
        return Err("an empty run id names no run (`loads runs` lists them)".into());
    }
    if let Some(exact) = ids.clone().find(|id| *id == given) {
        return Ok(exact.to_owned());
    }
    let mut candidates: Vec<&str> = ids.filter(|id| id.starts_with(given)).collect();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [] => Err(format!("no run {given:?} (`loads runs` lists them)")),
        [one] => Ok((*one).to_owned()),
        many => {
            let shown = many[..many.len().min(MAX_CANDIDATES)].join(", ");
            let more = many.len().saturating_sub(MAX_CANDIDATES);
            Err(format!(
                "run id {given:?} is ambiguous: {} runs start with it: {shown}{}; give more of it",
                many.len(),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn a_unique_prefix_names_its_run_and_an_ambiguous_one_lists_the_candidates() {
        let ids = ["6b10aa-0001", "6b10ab-0002", "6c00-0003", "6c00"];
        let p = |g: &str| pick(ids.iter().copied(), g);
        assert_eq!(p("6b10aa").as_deref(), Ok("6b10aa-0001"));
        assert_eq!(p("6b10ab-0002").as_deref(), Ok("6b10ab-0002"));
        // A whole id wins over the longer ids it starts.
        assert_eq!(p("6c00").as_deref(), Ok("6c00"));
        let e = p("6b1").expect_err("ambiguous");
        assert!(
            e.contains("ambiguous") && e.contains("6b10aa-0001, 6b10ab-0002"),
            "{e}"
        );
        assert!(p("7").expect_err("none").starts_with("no run \"7\""));
        assert!(p("").is_err());
        let many: Vec<String> = (0..25).map(|i| format!("aa{i:02}")).collect();
        let e = pick(many.iter().map(String::as_str), "aa").expect_err("many");
        assert!(e.contains("25 runs") && e.contains("and 15 more"), "{e}");
    }
}
