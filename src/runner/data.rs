//! The test data of a run as its runners load it, before any load: the files of `--data` read
//! (a missing, empty or malformed file is a usage error that names `--data`), and the data
//! names the run's tests ask for (`t.data("NAME")`, found by `#[loads::suite]`) checked against
//! the declared ones.
//!
//! Data enters as the run's arguments and the tests' [`TestInfo`]; a shared [`DataSet`] leaves,
//! for the virtual users' test contexts, or a [`UsageError`].

use std::path::Path;
use std::sync::Arc;

use crate::case::TestInfo;
use crate::config::{RunArgs, UsageError};
use crate::data::DataSet;

/// The data sources of `args`, read from the current directory, after checking that every
/// name the `tests` (full name, info) ask for is declared.
pub(crate) fn load_data<'a>(
    args: &RunArgs,
    tests: impl IntoIterator<Item = (&'a str, &'static TestInfo)>,
) -> Result<Arc<DataSet>, UsageError> {
    let declared = |name: &str| args.plan.data.iter().any(|d| d.name == name);
    for (full, info) in tests {
        if let Some(missing) = info.data.iter().find(|n| !declared(n)) {
            let known = if args.plan.data.is_empty() {
                String::new()
            } else {
                format!(
                    " (the run declares: {})",
                    args.plan
                        .data
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(UsageError::new(
                "--data",
                format!(
                    "{full} uses data '{missing}', which the run does not declare{known}: add --data {missing}=FILE[:STRATEGY] (or a [[data]] table with name = \"{missing}\" in the config file)"
                ),
            ));
        }
    }
    let part = args.plan.share.unwrap_or((0, 1));
    let set = DataSet::load(&args.plan.data, Path::new("."), part)
        .map_err(|e| UsageError::new("--data", format!("invalid --data: {e}")))?;
    Ok(Arc::new(set))
}
