//! The [`TestResult`]: receives every event of a run, keeps the aggregates and notifies its
//! observers (the outputs). It is the seed system's `TestResult`, with unittest-like counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use super::event::Event;
use super::recorder::unix_now;
use super::stats::{MAX_NAME_BYTES, Stats, TIMELINE_SLACK, TestCounts, Window, cut};
use super::summary::{
    AgentSummary, Delta, LatencySummary, LoadChange, OpenSummary, SUMMARY_FORMAT, SecondSummary,
    Summary, TestSummary, UrlSummary, compare, per_second as rate, statuses,
};
use super::threshold::{Threshold, Verdict};

/// Where a runner sends events: the [`TestResult`] locally, a relay in a worker.
pub trait EventSink: Send {
    /// Takes one event (a single event or a batch).
    fn ingest(&mut self, event: Event);
    /// Called a few times a second by the collector, with or without new events.
    fn tick(&mut self, active_users: u64) {
        let _ = active_users;
    }
    /// Whether the run should stop now (`--abort-on-threshold`); the runner checks it after
    /// each tick.
    fn should_stop(&self) -> bool {
        false
    }
    /// The load was changed while the run goes on (the dashboard's control): the result
    /// records it.
    fn load_changed(&mut self, change: LoadChange) {
        let _ = change;
    }
}

/// An error of an output, reported at the end of the run.
#[derive(Debug, thiserror::Error)]
#[error("output {output}: {message}")]
pub struct OutputError {
    /// The output's name.
    pub output: String,
    /// What went wrong.
    pub message: String,
}

/// An observer of a [`TestResult`]: every output is one.
pub trait Observer: Send {
    /// The run started.
    fn on_start(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let _ = result;
        Ok(())
    }
    /// `result` took `event` (already counted in `result`).
    fn on_event(&mut self, event: &Event, result: &TestResult) {
        let _ = (event, result);
    }
    /// Periodic call, a few times a second, for live views.
    fn on_tick(&mut self, result: &TestResult) {
        let _ = result;
    }
    /// The run ended: write the final report.
    fn on_finish(&mut self, result: &TestResult) -> Result<(), OutputError> {
        let _ = result;
        Ok(())
    }
}

/// What a run is: shown by outputs and stored with the results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's id.
    pub run_id: String,
    /// The full test name (`suite::test`).
    pub test: String,
    /// `--project-name`.
    pub project_name: Option<String>,
    /// `--server-url`.
    pub server_url: Option<String>,
    /// A human description of the load plan, e.g. `5 users × 4 hits`.
    pub plan: String,
    /// Hits the plan will make, when it is made of hits.
    pub planned_hits: Option<u64>,
    /// How long the plan runs, when it is made of durations (seconds, all cycle steps).
    pub planned_duration: Option<f64>,
    /// Number of agents (1 for a local run).
    pub agents: u64,
    /// `--threshold` expressions (stored with the run, so that `loads report` judges them too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
}

/// The collector of a run: aggregates and observers.
pub struct TestResult {
    meta: RunMeta,
    stats: Stats,
    started: DateTime<Utc>,
    started_at: Instant,
    ended: Option<DateTime<Utc>>,
    duration: Option<Duration>,
    interrupted: bool,
    running: bool,
    active_users: u64,
    observers: Vec<Box<dyn Observer>>,
    output_errors: Vec<OutputError>,
    problems: Vec<String>,
    thresholds: Vec<Threshold>,
    abort_on_threshold: bool,
    aborted: Option<String>,
    baseline: Option<Summary>,
    waiting: Option<String>,
    changes: Vec<LoadChange>,
    agents: std::collections::BTreeMap<String, AgentSummary>,
    /// Figures dated outside the run were left out of the timeline, and it was said.
    warned_untimed: bool,
}

impl TestResult {
    /// A result for the run described by `meta`, with no observers yet.
    pub fn new(meta: RunMeta) -> Self {
        TestResult {
            meta,
            stats: Stats::default(),
            started: Utc::now(),
            started_at: Instant::now(),
            ended: None,
            duration: None,
            interrupted: false,
            running: false,
            active_users: 0,
            observers: Vec::new(),
            output_errors: Vec::new(),
            problems: Vec::new(),
            thresholds: Vec::new(),
            abort_on_threshold: false,
            aborted: None,
            baseline: None,
            waiting: None,
            changes: Vec::new(),
            agents: std::collections::BTreeMap::new(),
            warned_untimed: false,
        }
    }

    /// Sets the thresholds judged at the end of the run; with `abort`, the run stops as soon as
    /// one can no longer pass ([`EventSink::should_stop`]).
    pub fn set_thresholds(&mut self, thresholds: Vec<Threshold>, abort: bool) {
        self.thresholds = thresholds;
        self.abort_on_threshold = abort;
    }

    /// The thresholds' verdicts on the data so far (final once the run has finished).
    pub fn verdicts(&self) -> Vec<Verdict> {
        let secs = self.duration().as_secs_f64();
        self.thresholds
            .iter()
            .map(|t| t.evaluate(&self.stats, secs))
            .collect()
    }

    /// Whether every threshold passes (true when there are none).
    pub fn thresholds_pass(&self) -> bool {
        self.verdicts().iter().all(|v| v.pass)
    }

    /// Why `--abort-on-threshold` stopped the run, if it did.
    pub fn aborted(&self) -> Option<&str> {
        self.aborted.as_deref()
    }

    /// Sets an earlier run's summary to compare with (`--baseline`).
    pub fn set_baseline(&mut self, baseline: Summary) {
        self.baseline = Some(baseline);
    }

    /// The earlier run's summary given with `--baseline`.
    pub fn baseline(&self) -> Option<&Summary> {
        self.baseline.as_ref()
    }

    /// This run's main figures against the baseline's (empty without a baseline).
    pub fn baseline_deltas(&self) -> Vec<Delta> {
        match &self.baseline {
            Some(b) => compare(&self.summary(), b),
            None => Vec::new(),
        }
    }

    fn check_abort(&mut self) {
        if !self.abort_on_threshold || self.aborted.is_some() {
            return;
        }
        let planned = self.meta.planned_hits;
        if let Some(t) = self
            .thresholds
            .iter()
            .find(|t| t.can_no_longer_pass(&self.stats, planned))
        {
            let v = t.evaluate(&self.stats, self.duration().as_secs_f64());
            self.aborted = Some(format!(
                "threshold {} can no longer pass ({} when the run was stopped; hits in flight then still ended and count in the totals)",
                t.expression, v.actual_text
            ));
        }
    }

    /// Adds an observer; it is told of everything from then on.
    pub fn add_observer(&mut self, observer: Box<dyn Observer>) {
        self.observers.push(observer);
    }

    fn notify(&mut self, mut f: impl FnMut(&mut dyn Observer, &TestResult)) {
        let mut observers = std::mem::take(&mut self.observers);
        for o in observers.iter_mut() {
            f(o.as_mut(), self);
        }
        self.observers = observers;
    }

    /// What the run waits for before it starts (a cluster run's workers), or `None` once it
    /// has started: the live outputs show it.
    pub fn set_waiting(&mut self, waiting: Option<String>) {
        self.waiting = waiting;
    }

    /// What the run waits for before it starts, if anything.
    pub fn waiting(&self) -> Option<&str> {
        self.waiting.as_deref()
    }

    /// Notes an event of agent `id` on `hostname` that carried `hits` hits (a cluster run's
    /// caller calls it for each event it takes): the summary's `per_agent`. At most
    /// [`MAX_AGENTS`] agents are kept.
    pub fn note_agent_event(&mut self, id: &str, hostname: &str, hits: u64) {
        if id.is_empty() || (self.agents.len() >= MAX_AGENTS && !self.agents.contains_key(id)) {
            return;
        }
        let a = self
            .agents
            .entry(id.to_owned())
            .or_insert_with(|| AgentSummary {
                id: id.to_owned(),
                // A worker's hostname may be as long as its message: cut.
                hostname: cut(hostname, MAX_NAME_BYTES).into_owned(),
                ..AgentSummary::default()
            });
        a.hits = a.hits.saturating_add(hits);
        a.last_event = unix_now_f64();
    }

    /// Notes that the broker lost agent `id` during the run.
    pub fn note_lost_agent(&mut self, id: &str) {
        // Its last event stays when it was (an agent that sent nothing gets a row now).
        self.agents
            .entry(id.to_owned())
            .or_insert_with(|| AgentSummary {
                id: id.to_owned(),
                last_event: unix_now_f64(),
                ..AgentSummary::default()
            })
            .lost = true;
    }

    /// Marks the run as interrupted (Ctrl-C, stop): outputs say so.
    pub fn set_interrupted(&mut self) {
        self.interrupted = true;
    }

    /// The run's description.
    pub fn meta(&self) -> &RunMeta {
        &self.meta
    }

    /// Sets the run's id (the one a broker gave it).
    pub fn set_run_id(&mut self, run_id: &str) {
        run_id.clone_into(&mut self.meta.run_id);
    }

    /// The aggregates so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// When the run started.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// When the run ended, once it has.
    pub fn ended(&self) -> Option<DateTime<Utc>> {
        self.ended
    }

    /// How long the run took (so far, while it runs).
    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or_else(|| self.started_at.elapsed())
    }

    /// Whether the run was interrupted before the end of its plan.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The latest active-users count, what the timeline's `users` says (in the open model, the
    /// most hits in flight at once in the collector's last period).
    pub fn active_users(&self) -> u64 {
        self.active_users
    }

    /// Outcome counts of all tests together.
    pub fn totals(&self) -> TestCounts {
        self.stats.totals()
    }

    /// HTTP requests per second over the whole run so far.
    pub fn requests_per_second(&self) -> f64 {
        per_second(self.stats.requests.count, self.duration())
    }

    /// True when no hit or lifecycle hook failed or errored and the run itself had no problem.
    pub fn is_success(&self) -> bool {
        let t = self.totals();
        t.failures == 0
            && t.errors == 0
            && self.stats.lifecycle_problems() == 0
            && self.stats.problems_dropped == 0
            && self.problems.is_empty()
    }

    /// Notes a problem of the run itself, outside any hit (a lost agent, a worker that could
    /// not start): outputs show it, and the run does not count as a success.
    pub fn add_run_problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Problems of the run itself (see [`add_run_problem`](Self::add_run_problem)).
    pub fn run_problems(&self) -> &[String] {
        &self.problems
    }

    /// The seconds this run's timeline files at unix second `now` (see [`Window`]): from its
    /// start to now (to its end, for a run that has ended), with the slack either side.
    fn window(&self, now: i64) -> Window {
        let to = self.ended.map_or(now, |e| e.timestamp().min(now));
        Window::of_run(self.started.timestamp(), to)
    }

    /// Says once, on the first figure left out of the timeline (dated outside the run), that
    /// such figures count in the totals only; the sources that send them count them (an
    /// external run's receiver) or log them (the broker's workers), not each message here.
    fn note_untimed(&mut self, n: u64) {
        if n > 0 && !self.warned_untimed {
            self.warned_untimed = true;
            tracing::warn!(
                "figures dated outside the run (more than {TIMELINE_SLACK} s before its start or after now: a runner's or worker's clock, or its add_hit started?) count in the totals but are left out of the per-second timeline; later ones are not logged"
            );
        }
    }

    /// Sets when the run started (for a run followed from elsewhere, still going on).
    pub fn set_started(&mut self, started: DateTime<Utc>) {
        let ago = (Utc::now() - started).to_std().unwrap_or_default();
        self.started = started;
        self.started_at = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        self.running = true;
    }

    /// Sets when the run started and how long it took (for a run rebuilt from storage).
    pub fn set_timing(&mut self, started: DateTime<Utc>, duration: Duration) {
        self.started = started;
        self.duration = Some(duration);
        self.ended = chrono::Duration::from_std(duration)
            .ok()
            .map(|d| started + d);
    }

    /// Errors the outputs reported.
    pub fn output_errors(&self) -> &[OutputError] {
        &self.output_errors
    }

    /// The run starts now: observers are told (once; `startTestRun` calls this too).
    pub fn start(&mut self) {
        if self.running {
            return;
        }
        self.running = true;
        if self.duration.is_none() {
            self.started = Utc::now();
            self.started_at = Instant::now();
        }
        let mut errors = Vec::new();
        self.notify(|o, r| {
            if let Err(e) = o.on_start(r) {
                errors.push(e);
            }
        });
        self.output_errors.extend(errors);
    }

    /// The run is over: observers write their final reports. Observers are dropped afterwards.
    pub fn finish(&mut self) {
        if self.duration.is_none() {
            self.duration = Some(self.started_at.elapsed());
            self.ended = Some(Utc::now());
        }
        self.stats
            .compact_timeline(unix_now() + super::stats::TIMELINE_KEEP_FULL + 1);
        let mut errors = Vec::new();
        self.notify(|o, r| {
            if let Err(e) = o.on_finish(r) {
                errors.push(e);
            }
        });
        self.output_errors.extend(errors);
        self.observers.clear();
    }
}

impl EventSink for TestResult {
    fn ingest(&mut self, event: Event) {
        match &event {
            Event::StartTestRun => self.start(),
            Event::StopTestRun => {
                if self.duration.is_none() {
                    self.duration = Some(self.started_at.elapsed());
                    self.ended = Some(Utc::now());
                }
            }
            other => {
                let now = unix_now();
                let window = self.window(now);
                let left_out = other.apply_within(&mut self.stats, now, window);
                self.note_untimed(left_out);
            }
        }
        self.notify(|o, r| o.on_event(&event, r));
    }

    fn tick(&mut self, active_users: u64) {
        self.active_users = active_users;
        self.stats.compact_timeline(unix_now());
        self.check_abort();
        self.notify(|o, r| o.on_tick(r));
    }

    fn should_stop(&self) -> bool {
        self.aborted.is_some()
    }

    fn load_changed(&mut self, change: LoadChange) {
        // At most a few per second from a person's clicks; bounded all the same.
        if self.changes.len() < MAX_CHANGES {
            self.changes.push(change);
        }
    }
}

/// Load changes a result keeps (a run's load control refuses more).
pub const MAX_CHANGES: usize = 10_000;

/// Agents a result keeps figures of.
pub const MAX_AGENTS: usize = 1_000;

fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn per_second(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

impl TestResult {
    /// The agents of a cluster run with their share of the hits (empty for a local run): the
    /// summary's `per_agent`.
    pub fn per_agent(&self) -> Vec<AgentSummary> {
        let hits = self.stats().totals().hits;
        self.agents
            .values()
            .map(|a| AgentSummary {
                share: if hits > 0 {
                    a.hits as f64 / hits as f64
                } else {
                    0.0
                },
                ..a.clone()
            })
            .collect()
    }

    /// The summary of this result as it is now (what the `json` output writes).
    pub fn summary(&self) -> Summary {
        let result = self;
        let meta = result.meta();
        let stats = result.stats();
        let totals = stats.totals();
        let secs = result.duration().as_secs_f64();
        let mut urls = Vec::new();
        for (url, methods) in &stats.urls {
            for (method, r) in methods {
                urls.push(UrlSummary {
                    method: method.clone(),
                    url: url.clone(),
                    requests: r.count,
                    rps: rate(r.count, secs),
                    http_errors: r.http_errors(),
                    statuses: statuses(r),
                    latency: LatencySummary::of(&r.latency),
                });
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let timeline = stats
            .timeline
            .iter()
            .map(|(t, s)| {
                let q = s.quantiles();
                SecondSummary {
                    time: *t,
                    hits: s.hits,
                    successes: s.successes,
                    failures: s.failures,
                    errors: s.errors,
                    requests: s.requests,
                    socket_messages: s.socket_messages,
                    users: s.users,
                    dropped: s.dropped,
                    p50: q.map(|q| ms(q.p50)),
                    p95: q.map(|q| ms(q.p95)),
                    p99: q.map(|q| ms(q.p99)),
                    mean: q.map(|q| q.mean / 1000.0),
                    max: q.map(|q| ms(q.max)),
                }
            })
            .collect();
        let thresholds = result.verdicts();
        Summary {
            format: SUMMARY_FORMAT,
            run_id: meta.run_id.clone(),
            test: meta.test.clone(),
            project_name: meta.project_name.clone(),
            server_url: meta.server_url.clone(),
            plan: meta.plan.clone(),
            agents: meta.agents,
            started: result.started().to_rfc3339(),
            ended: result.ended().map(|e| e.to_rfc3339()),
            duration: secs,
            interrupted: result.interrupted(),
            aborted: result.aborted().map(str::to_owned),
            hits: totals.hits,
            successes: totals.successes,
            failures: totals.failures,
            errors: totals.errors,
            hits_per_second: rate(totals.hits, secs),
            requests: stats.requests.count,
            rps: rate(stats.requests.count, secs),
            latency: LatencySummary::of(&stats.requests.latency),
            statuses: statuses(&stats.requests),
            urls,
            tests: TestSummary::all(&stats.tests, secs),
            scenarios: TestSummary::all(&stats.scenarios, secs),
            lifecycle: TestSummary::all(&stats.lifecycle, secs),
            counters: stats.counters.clone(),
            sockets: stats.sockets,
            problems: stats.problems.clone(),
            problems_dropped: stats.problems_dropped,
            run_problems: result.run_problems().to_vec(),
            timeline,
            open_model: stats.open.as_ref().map(|o| OpenSummary {
                latency_uncorrected: LatencySummary::of(&o.requests_uncorrected),
                hit_time: LatencySummary::of(&o.hits),
                hit_time_uncorrected: LatencySummary::of(&o.hits_uncorrected),
                dropped: o.dropped,
            }),
            changes: result.changes.clone(),
            per_agent: result.per_agent(),
            success: result.is_success() && thresholds.iter().all(|v| v.pass),
            thresholds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::event::{ExcInfo, LoadsStatus};
    use crate::result::{Event, EventSink, RunMeta, Stats};

    #[test]
    fn summary_round_trips_and_compares() {
        let mut r = TestResult::new(RunMeta {
            test: "s::t".into(),
            ..RunMeta::default()
        });
        let mut s = Stats::default();
        s.record_request("GET", "http://127.0.0.1:1/a", 200, 2_000, 0);
        s.record_request("GET", "http://127.0.0.1:1/a", 503, 4_000, 0);
        s.record_start("s::t");
        s.record_success("s::t", 0);
        r.start();
        r.ingest(Event::Batch(Box::new(s)));
        r.finish();
        let sum = r.summary();
        assert_eq!(sum.requests, 2);
        assert_eq!(sum.urls[0].http_errors, 1);
        assert_eq!(sum.statuses["503"], 1);
        assert!((sum.latency.p50 - 2.0).abs() < 0.01);
        let text = serde_json::to_string(&sum).expect("json");
        let back: Summary = serde_json::from_str(&text).expect("parse");
        // Floats may come back a last bit apart (serde_json's default float parsing).
        assert_eq!(back.urls.len(), sum.urls.len());
        assert_eq!(back.statuses, sum.statuses);
        assert_eq!(back.tests.len(), sum.tests.len());
        assert_eq!(back.tests["s::t"].counts, sum.tests["s::t"].counts);
        assert_eq!(back.started, sum.started);
        assert!((back.duration - sum.duration).abs() < 1e-9);
        assert!((back.latency.p50 - sum.latency.p50).abs() < 1e-9);
        let mut base = sum.clone();
        base.latency.p95 = sum.latency.p95 * 2.0;
        let d = compare(&sum, &base);
        let p95 = d.iter().find(|d| d.name == "p95").expect("p95");
        assert_eq!(p95.better, Some(true));
        assert_eq!(p95.change_text(), "-50.0%");
    }

    use std::sync::{Arc, Mutex};

    struct Spy(Arc<Mutex<Vec<String>>>);
    impl Observer for Spy {
        fn on_start(&mut self, _: &TestResult) -> Result<(), OutputError> {
            self.0.lock().expect("lock").push("start".into());
            Ok(())
        }
        fn on_event(&mut self, e: &Event, r: &TestResult) {
            self.0
                .lock()
                .expect("lock")
                .push(format!("{} {}", e.data_type(), r.totals().hits));
        }
        fn on_finish(&mut self, r: &TestResult) -> Result<(), OutputError> {
            self.0
                .lock()
                .expect("lock")
                .push(format!("finish {}", r.totals().failures));
            Err(OutputError {
                output: "spy".into(),
                message: "disk full".into(),
            })
        }
    }

    #[test]
    fn observers_see_every_event_after_it_is_counted() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut r = TestResult::new(RunMeta::default());
        r.add_observer(Box::new(Spy(log.clone())));
        r.start();
        let st = LoadsStatus::default();
        r.ingest(Event::StartTestRun);
        r.ingest(Event::StartTest {
            test: "s::t".into(),
            loads_status: st,
        });
        r.ingest(Event::AddFailure {
            test: "s::t".into(),
            exc_info: ExcInfo("no".into(), "ensure".into(), String::new()),
            loads_status: st,
        });
        r.ingest(Event::StopTestRun);
        r.finish();
        assert_eq!(
            *log.lock().expect("lock"),
            vec![
                "start",
                "startTestRun 0",
                "startTest 0",
                "addFailure 1",
                "stopTestRun 1",
                "finish 1"
            ]
        );
        assert!(!r.is_success());
        assert_eq!(r.output_errors().len(), 1);
        assert_eq!(r.stats().problems[0].message, "no");
    }
}
