//! The caller's side of a run in progress: [`follow`] receives the broker's publications of
//! one run into a [`TestResult`] until the run ends, the broker goes away (silence, or another
//! broker process) or the user detaches. Ctrl-C (or SIGTERM) asks whether to stop or detach;
//! thresholds that abort stop the run; events the subscriber missed are taken from the broker's
//! storage at the end, so that the totals are exact. Publications enter from the subscriber
//! socket; the finished result (or the detachment) leaves.

use std::time::{Duration, Instant};

use super::BROKER_SILENCE;
use super::pages::{each_stored_event, fetch_page};
use crate::result::{Event, EventSink, TestResult};
use crate::runner::RunError;
use crate::transport::client::BrokerClient;
use crate::transport::{CallerRequest, HEARTBEAT_TOPIC, Publication, StoredRun, from_frame, z};

/// How long the caller's status checks wait for an answer (a broker gone is noticed by its
/// silence within [`BROKER_SILENCE`], never by a request left hanging).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a caller that stopped a run waits for its end.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// How following a run ended.
pub(super) enum Followed {
    /// The run ended (or the broker went away); the result is finished.
    Ended(Box<TestResult>),
    /// The user detached; the run goes on.
    Detached(String),
}

/// The process's interrupts, for the synchronous caller loop: Ctrl-C presses are counted (the
/// second one quits at once).
pub(super) fn ctrl_c_counter() -> &'static crate::config::signals::Interrupts {
    let i = crate::config::signals::interrupts();
    i.quit_on_second_press();
    i
}

/// What Ctrl-C (SIGINT) does to a caller following a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnCtrlC {
    /// Nothing: no handler (`check-cluster`, a runner driven by code).
    Ignore,
    /// Asks "(s)top or (d)etach?" on a terminal; stops the run without one (`loads run`).
    AskOrStop,
    /// Asks on a terminal; detaches without one (`loads attach`: an observer does not stop
    /// what it did not start).
    AskOrDetach,
}

/// Asks "(s)top the test or (d)etach?"; `without_terminal` when there is no terminal to ask.
fn ask_stop_or_detach(without_terminal: bool) -> bool {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return without_terminal;
    }
    loop {
        eprint!("\n(s)top the test or (d)etach? ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return true;
        }
        match line.trim() {
            "s" | "S" | "stop" => return true,
            "d" | "D" | "detach" => return false,
            _ => {}
        }
    }
}

/// Receives the publications of `run_id` into `result` until the run ends, the broker goes
/// away, or the user detaches. Events numbered `skip` or less were already taken.
pub(super) fn follow(
    client: &BrokerClient,
    sub: &zmq::Socket,
    mut result: TestResult,
    run_id: &str,
    skip: u64,
    on_ctrl_c: OnCtrlC,
    load: Option<&super::ClusterLoad>,
) -> Result<Followed, RunError> {
    // Counted from when the caller installed it (before the run was submitted, for `run`).
    let presses = (on_ctrl_c != OnCtrlC::Ignore).then(ctrl_c_counter);
    z("subscribe", sub.set_subscribe(run_id.as_bytes()))?;
    let mut broker_pid: Option<u32> = None;
    let mut last_status = Instant::now();
    let mut handled = 0;
    let mut stopping = false;
    let mut stopped_at: Option<Instant> = None;
    let mut last_beat = Instant::now();
    let mut last_tick = Instant::now();
    // Which events (by sequence number) arrived, to fetch the missed ones at the end.
    let mut seen: Vec<bool> = Vec::new();
    // Whether a worker has started (attaching to a running run: it has).
    let mut went = skip > 0;
    // How long the run had lasted at its last event (a run cut short by a lost broker ends
    // there: the silence that follows is not part of its duration).
    let mut last_event: Option<Duration> = None;
    // Agents the broker said it lost.
    let mut lost = std::collections::HashSet::new();
    loop {
        // SIGTERM stops the run as a Ctrl-C without a terminal would.
        if let Some(p) = &presses
            && (p.presses() > handled || (p.terminated() && !stopping))
        {
            handled = p.presses();
            // The dashboard's stop button stops without asking.
            if !stopping
                && (p.terminated()
                    || p.asked_to_stop()
                    || ask_stop_or_detach(on_ctrl_c == OnCtrlC::AskOrStop))
            {
                stopping = true;
                stopped_at = Some(Instant::now());
                let stop = CallerRequest::Stop {
                    run_id: run_id.to_owned(),
                };
                result.set_interrupted();
                if !went {
                    // Still waiting for its workers: nothing ran, nothing to flush; the wait
                    // ends now, whatever the workers do.
                    let _ = client.request_within(&stop, None, STATUS_TIMEOUT);
                    eprintln!("Stopped run {run_id} before it started");
                    result.set_waiting(None);
                    result.finish();
                    return Ok(Followed::Ended(Box::new(result)));
                }
                eprintln!("Stopping run {run_id}: its workers flush what they have");
                // `unknown_run`: it is ending on its own; its end is on the way.
                let _ = client.request_within(&stop, None, STATUS_TIMEOUT);
            } else if !stopping {
                return Ok(Followed::Detached(run_id.to_owned()));
            }
        }
        // The dashboard's load changes, once the broker passed them on.
        for change in load.map(|l| l.take_changes()).unwrap_or_default() {
            result.load_changed(change);
        }
        let mut items = [sub.as_poll_item(zmq::POLLIN)];
        // EINTR from Ctrl-C is not an error: the loop looks at the press first.
        let _ = zmq::poll(&mut items, 100);
        if items[0].is_readable() {
            while let Ok(frames) = sub.recv_multipart(zmq::DONTWAIT) {
                let (Some(topic), Some(body)) = (frames.first(), frames.get(1)) else {
                    continue;
                };
                if topic.as_slice() == HEARTBEAT_TOPIC.as_bytes() {
                    if let Ok(Publication::Heartbeat { pid }) = from_frame::<Publication>(body) {
                        match broker_pid {
                            None => broker_pid = Some(pid),
                            Some(p) if p != pid => {
                                // Another broker process: the one that had the run is gone.
                                if let Some(d) = last_event {
                                    result.set_timing(result.started(), d);
                                }
                                result.add_run_problem(format!(
                                    "the broker at {} restarted during the run; the results received so far are shown",
                                    client.endpoint()
                                ));
                                result.set_waiting(None);
                                result.finish();
                                return Ok(Followed::Ended(Box::new(result)));
                            }
                            _ => {}
                        }
                    }
                    last_beat = Instant::now();
                    continue;
                }
                if topic.as_slice() != run_id.as_bytes() {
                    continue;
                }
                // One event, numbered `seq` in the run, taken once.
                let mut take = |seq: u64, envelope: crate::result::Envelope| {
                    if seq <= skip {
                        return;
                    }
                    let i = seq as usize;
                    if seen.len() <= i {
                        seen.resize(i + 1, false);
                    }
                    if seen[i] {
                        return;
                    }
                    seen[i] = true;
                    last_event = Some(result.duration());
                    let hits = match &envelope.event {
                        Event::Batch(stats) => stats.totals().hits,
                        Event::AddSuccess { .. }
                        | Event::AddFailure { .. }
                        | Event::AddError { .. } => 1,
                        _ => 0,
                    };
                    result.note_agent_event(&envelope.agent_id, &envelope.hostname, hits);
                    match envelope.event {
                        Event::StartTestRun => {
                            // The first worker started: the run is dated from the go, not
                            // from its submission (binary transfer, start-up).
                            if !went {
                                went = true;
                                result.set_waiting(None);
                                result.set_started(chrono::Utc::now());
                            }
                        }
                        Event::StopTestRun => {}
                        event => result.ingest(event),
                    }
                };
                match from_frame::<Publication>(body) {
                    Ok(Publication::Event { seq, envelope }) => take(seq, envelope),
                    Ok(Publication::Events { first, envelopes }) => {
                        for (i, envelope) in envelopes.into_iter().enumerate() {
                            take(first + i as u64, envelope);
                        }
                    }
                    Ok(Publication::Waiting {
                        ready,
                        agents,
                        waiting_for,
                        deadline,
                    }) if !went => {
                        result.set_waiting(Some(format!(
                            "waiting for workers: {ready}/{agents} ready; the run starts without {} in {deadline:.0}s",
                            if waiting_for.is_empty() {
                                "the others".to_owned()
                            } else {
                                waiting_for.join(", ")
                            }
                        )));
                    }
                    Ok(Publication::AgentLost { agent }) if lost.insert(agent.clone()) => {
                        eprintln!(
                            "warning: agent {agent} was lost (no heartbeat): the run goes on without it"
                        );
                        result.note_lost_agent(&agent);
                        result.add_run_problem(lost_agent_problem(&agent));
                    }
                    Ok(Publication::End {
                        status,
                        lost_agents,
                        errors,
                        events,
                        unstored,
                        duration,
                    }) => {
                        result.set_waiting(None);
                        // The broker's measure of the run, from the go to its last worker's end:
                        // the same as the stored row's, without the waits that followed.
                        if let Some(d) = duration.and_then(|d| Duration::try_from_secs_f64(d).ok())
                        {
                            result.set_timing(result.started(), d);
                        }
                        let expected = events.saturating_sub(skip);
                        let mut received = seen.iter().filter(|s| **s).count() as u64;
                        if received < expected {
                            // The publisher dropped some (a slow subscriber): take them from
                            // the broker's storage, so that the totals are exact.
                            received += take_missed(client, run_id, skip, &seen, &mut result)?.1;
                        }
                        if received < expected {
                            result.add_run_problem(format!(
                                "{} of the run's {expected} events reached neither this caller nor the broker's storage: these results are incomplete",
                                expected - received
                            ));
                        }
                        if unstored > 0 {
                            result.add_run_problem(format!(
                                "the broker could not store {unstored} of the run's {events} events (its database failed: see the broker's log); this summary has them, but `loads report {run_id}` will not"
                            ));
                        }
                        for a in lost_agents.into_iter().filter(|a| !lost.contains(a)) {
                            result.note_lost_agent(&a);
                            result.add_run_problem(lost_agent_problem(&a));
                        }
                        for e in errors {
                            result.add_run_problem(e);
                        }
                        if status == "stopped" && result.aborted().is_none() {
                            result.set_interrupted();
                        }
                        result.ingest(Event::StopTestRun);
                        result.finish();
                        return Ok(Followed::Ended(Box::new(result)));
                    }
                    _ => {}
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(200) {
            last_tick = Instant::now();
            result.tick(0);
            if !stopping && result.should_stop() {
                stopping = true;
                eprintln!(
                    "Stopping run {run_id}: {}",
                    result.aborted().unwrap_or("a threshold failed")
                );
                let stop = CallerRequest::Stop {
                    run_id: run_id.to_owned(),
                };
                let _ = client.request(&stop, None)?;
            }
        }
        // The end of the run can be lost like any publication: ask now and then (briefly: a
        // broker that went away is noticed by its silence, not by a hanging request).
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            if let Ok(Ok(v)) = client.request_within(&CallerRequest::Runs, None, STATUS_TIMEOUT) {
                let rows: Vec<crate::transport::RunRow> =
                    serde_json::from_value(v["runs"].clone()).unwrap_or_default();
                if rows
                    .iter()
                    .any(|r| r.run_id == run_id && r.status != "running")
                {
                    let (stored, _) = take_missed(client, run_id, skip, &seen, &mut result)?;
                    for a in &stored.row.lost_agents {
                        result.add_run_problem(lost_agent_problem(a));
                    }
                    for p in &stored.row.problems {
                        result.add_run_problem(p.clone());
                    }
                    if stored.row.unstored > 0 {
                        result.add_run_problem(format!(
                            "the broker could not store {} of the run's events (its database failed: see the broker's log)",
                            stored.row.unstored
                        ));
                    }
                    if stored.row.status != "finished" {
                        result.add_run_problem(format!("the run ended as {}", stored.row.status));
                    }
                    result.ingest(Event::StopTestRun);
                    result.finish();
                    return Ok(Followed::Ended(Box::new(result)));
                }
            }
        }
        if last_beat.elapsed() > BROKER_SILENCE {
            // Not an interruption (exit 130): the run is lost to this caller (exit 1).
            if let Some(d) = last_event {
                result.set_timing(result.started(), d);
            }
            result.add_run_problem(format!(
                "the broker at {} went away (no heartbeat for {}s); the results received so far are shown",
                client.endpoint(),
                BROKER_SILENCE.as_secs()
            ));
            result.set_waiting(None);
            result.finish();
            return Ok(Followed::Ended(Box::new(result)));
        }
        if stopped_at.is_some_and(|t| t.elapsed() > STOP_WAIT) {
            result.add_run_problem(format!(
                "the run did not end within {}s of the stop; the results received so far are shown",
                STOP_WAIT.as_secs()
            ));
            result.finish();
            return Ok(Followed::Ended(Box::new(result)));
        }
    }
}

/// What the summary says of an agent lost during a run.
pub(super) fn lost_agent_problem(agent: &str) -> String {
    format!(
        "agent {agent} was lost during the run (no heartbeat); the results it had sent are included, and the run's duration (so its rates per second) includes the time the broker took to notice (its --agent-timeout)"
    )
}

/// Fetches the stored run and gives `result` the events numbered above `skip` that are not
/// `seen` (publications the subscriber missed); returns the stored run and how many events it
/// gave.
fn take_missed(
    client: &BrokerClient,
    run_id: &str,
    skip: u64,
    seen: &[bool],
    result: &mut TestResult,
) -> Result<(StoredRun, u64), RunError> {
    let (first, next) = fetch_page(client, run_id, None)?;
    let mut header = first.clone();
    header.events.clear();
    let mut taken = 0;
    each_stored_event(client, run_id, first, next, |seq, env| {
        let missed = seq > skip && !seen.get(seq as usize).copied().unwrap_or(false);
        if missed {
            taken += 1;
            if !matches!(env.event, Event::StartTestRun | Event::StopTestRun) {
                result.ingest(env.event);
            }
        }
    })?;
    Ok((header, taken))
}
