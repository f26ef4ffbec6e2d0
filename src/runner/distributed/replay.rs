//! Runs the broker stored, seen again: [`report`] rebuilds a finished (or running) run from its
//! stored events page by page (`loads report`), and [`attach`] takes a running run's stored
//! events and then follows it live (`loads attach`, and [`watch`] for the broker's page). Stored pages enter from the broker; a
//! [`TestResult`] with the viewer's outputs, thresholds and baseline leaves.

use std::time::Duration;

use super::follow::{Followed, OnCtrlC, follow, lost_agent_problem};
use super::pages::{each_stored_event, fetch_page};
use super::{REPLY_TIMEOUT, connect};
use crate::config::UsageError;
use crate::result::{Event, EventSink, RunMeta, TestResult};
use crate::runner::{ReportArgs, RunError};
use crate::transport::client::BrokerClient;
use crate::transport::{CallerRequest, StoredRun};

/// Follows a run of the broker at `broker` from where it is (its stored events first), with
/// `outputs`. `run_id` may be a unique prefix of the run's id; `None` picks the active run, or
/// asks which when there are several.
pub fn attach(
    broker: &str,
    run_id: Option<&str>,
    view: &ReportArgs,
) -> Result<Option<TestResult>, RunError> {
    let (client, sub) = connect(broker)?;
    let run_id = match run_id {
        Some(r) => super::resolve_run(&client, r)?,
        None => {
            let v = client.call(&CallerRequest::Ping, None)?;
            let active: Vec<String> =
                serde_json::from_value(v["active_runs"].clone()).unwrap_or_default();
            match active.as_slice() {
                [] => {
                    return Err(RunError::Usage(UsageError::new(
                        "RUN_ID",
                        "no run is active on this broker (`loads runs` lists past runs)",
                    )));
                }
                [one] => one.clone(),
                many => choose(many)?,
            }
        }
    };
    let (run, next) = fetch_page(&client, &run_id, None)?;
    if run.row.status != "running" {
        return replay_pages(&client, run, next, view).map(Some);
    }
    let result = crate::output::build_result(
        RunMeta {
            run_id: run_id.clone(),
            ..run.meta.clone()
        },
        view,
        false,
    )?;
    match follow_from_storage(&client, &sub, result, run, next, OnCtrlC::AskOrDetach)? {
        Followed::Ended(r) => Ok(Some(*r)),
        Followed::Detached(id) => {
            println!("Detached from run {id}: it goes on; `loads attach {id}` follows it again");
            Ok(None)
        }
    }
}

/// Follows run `run_id` of the broker at `broker` for a viewer that did not start it (the
/// broker's page): its stored events, then live until it ends, into a test result without
/// outputs that `observer` watches. A run that already ended is rebuilt from its storage
/// (without the observer). Returns the finished result.
pub fn watch(
    broker: &str,
    run_id: &str,
    observer: Box<dyn crate::result::Observer>,
) -> Result<TestResult, RunError> {
    let (client, sub) = connect(broker)?;
    let (run, next) = fetch_page(&client, run_id, None)?;
    if run.row.status != "running" {
        return replay_pages(&client, run, next, &ReportArgs::default());
    }
    let mut result = crate::output::build_result(
        RunMeta {
            run_id: run_id.to_owned(),
            ..run.meta.clone()
        },
        &ReportArgs::default(),
        false,
    )?;
    result.add_observer(observer);
    match follow_from_storage(&client, &sub, result, run, next, OnCtrlC::Ignore)? {
        Followed::Ended(r) => Ok(*r),
        Followed::Detached(_) => Err(RunError::Cluster("detached".into())),
    }
}

/// Takes a running run's stored events (from its first page `run` and the following ones)
/// into `result`, then follows it live.
fn follow_from_storage(
    client: &BrokerClient,
    sub: &zmq::Socket,
    mut result: TestResult,
    run: StoredRun,
    next: Option<i64>,
    on_ctrl_c: OnCtrlC,
) -> Result<Followed, RunError> {
    let run_id = run.row.run_id.clone();
    result.start();
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&run.row.started) {
        result.set_started(started.with_timezone(&chrono::Utc));
    }
    let skip = each_stored_event(client, &run_id, run, next, |_, env| {
        if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
            result.ingest(env.event);
        }
    })?;
    follow(client, sub, result, &run_id, skip, on_ctrl_c, None)
}

/// Asks which of several active runs to attach to (or explains, without a terminal).
fn choose(runs: &[String]) -> Result<String, RunError> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return Err(RunError::Usage(UsageError::new(
            "RUN_ID",
            format!(
                "several runs are active; name one: `loads attach RUN_ID` with one of {}",
                runs.join(", ")
            ),
        )));
    }
    eprintln!("Several runs are active:");
    for (i, r) in runs.iter().enumerate() {
        eprintln!("  {}) {r}", i + 1);
    }
    loop {
        eprint!("Attach to which (1-{})? ", runs.len());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return Err(RunError::Usage(UsageError::new("RUN_ID", "no run chosen")));
        }
        if let Ok(n) = line.trim().parse::<usize>()
            && (1..=runs.len()).contains(&n)
        {
            return Ok(runs[n - 1].clone());
        }
    }
}

/// Rebuilds run `run_id` of the broker at `broker` from its storage, through a test result with
/// the outputs, output options, thresholds and baseline of `view` (`loads report`; the run's own
/// thresholds when `view` has none). `run_id` may be a unique prefix of the run's id. Events
/// are fetched page by page.
pub fn report(broker: &str, run_id: &str, view: &ReportArgs) -> Result<TestResult, RunError> {
    let client = BrokerClient::connect(broker, REPLY_TIMEOUT)?;
    let run_id = super::resolve_run(&client, run_id)?;
    let (run, next) = fetch_page(&client, &run_id, None)?;
    replay_pages(&client, run, next, view)
}

/// Rebuilds a stored run from its first page and the following ones.
fn replay_pages(
    client: &BrokerClient,
    mut run: StoredRun,
    next: Option<i64>,
    view: &ReportArgs,
) -> Result<TestResult, RunError> {
    let first_events = std::mem::take(&mut run.events);
    let run_id = run.row.run_id.clone();
    let mut result = crate::output::build_result(
        RunMeta {
            run_id: run.row.run_id.clone(),
            ..run.meta.clone()
        },
        view,
        false,
    )?;
    let started = chrono::DateTime::parse_from_rfc3339(&run.row.started)
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    result.set_timing(
        started,
        Duration::from_secs_f64(run.row.duration.unwrap_or(0.0).max(0.0)),
    );
    result.start();
    let first = StoredRun {
        events: first_events,
        ..run.clone()
    };
    each_stored_event(client, &run_id, first, next, |_, env| {
        if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
            result.ingest(env.event);
        }
    })?;
    for a in &run.row.lost_agents {
        result.add_run_problem(lost_agent_problem(a));
    }
    // As its caller was told at the end (`Publication::End`'s errors).
    for p in &run.row.problems {
        result.add_run_problem(p.clone());
    }
    if run.row.unstored > 0 {
        result.add_run_problem(format!(
            "{} events of this run reached the broker but could not be stored (its database failed): this report misses them",
            run.row.unstored
        ));
    }
    if run.row.status == "running" {
        result.add_run_problem("the run is still going on: this report shows its results so far");
    } else if run.row.status == "interrupted" {
        result.add_run_problem("the broker stopped during this run: its results end there");
    }
    result.finish();
    Ok(result)
}
