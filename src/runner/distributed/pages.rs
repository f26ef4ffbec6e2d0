//! The paging of stored runs: a stored run comes from the broker one page of events at a time
//! ([`fetch_page`]), and [`each_stored_event`] walks all of them in order, so that rebuilding or
//! completing a run keeps one page in memory whatever its size. Pages enter from the broker's
//! answers to `GetRun`; numbered events leave to a callback.

use super::BrokerClient;
use crate::config::UsageError;
use crate::runner::RunError;
use crate::transport::{CallerRequest, StoredRun};

/// One page of a stored run (see [`CallerRequest::GetRun`]) and the cursor of the next one.
pub(super) fn fetch_page(
    client: &BrokerClient,
    run_id: &str,
    after: Option<i64>,
) -> Result<(StoredRun, Option<i64>), RunError> {
    let mut v = match client.request(
        &CallerRequest::GetRun {
            run_id: run_id.to_owned(),
            after,
        },
        None,
    )? {
        Ok(v) => v,
        Err(r) if r.code == "unknown_run" => {
            return Err(RunError::Usage(UsageError::new("RUN_ID", r.message)));
        }
        Err(r) => return Err(RunError::Cluster(r.message)),
    };
    let run: StoredRun = serde_json::from_value(v["run"].take())
        .map_err(|e| RunError::Cluster(format!("bad stored run: {e}")))?;
    Ok((run, v["next"].as_i64()))
}

/// Calls `f(seq, event)` for every stored event of a run (numbered from 1), the events of
/// `first` and then of the following pages, fetched one at a time: memory stays bounded by a
/// page whatever the size of the run.
pub(super) fn each_stored_event(
    client: &BrokerClient,
    run_id: &str,
    first: StoredRun,
    mut next: Option<i64>,
    mut f: impl FnMut(u64, crate::result::Envelope),
) -> Result<u64, RunError> {
    let mut seq = 0;
    for env in first.events {
        seq += 1;
        f(seq, env);
    }
    while let Some(after) = next {
        let (page, following) = fetch_page(client, run_id, Some(after))?;
        for env in page.events {
            seq += 1;
            f(seq, env);
        }
        next = following;
    }
    Ok(seq)
}
