//! Runners: what executes a run. One trait, [`Runner`], with three implementations:
//! [`LocalRunner`] (in this process; in a worker, with the relay in place of the test result),
//! [`DistributedRunner`] (hands the run to a broker and rebuilds the results it publishes) and
//! [`ExternalRunner`] (one process per virtual user for tests in other languages). Each is built
//! from one serialisable argument struct, [`RunArgs`] (the struct that travels to agents), and
//! started with [`Runner::execute`]. [`Plan`] is the load plan: cycles, stages or an arrival rate.
//! [`runner_for`] is the one place that picks the local or the external runner for a `RunArgs`
//! (for `loads run` and for a cluster's workers).
//!
//! Data flow of a local run: `RunArgs` → [`Plan`] → virtual-user tasks → per-worker
//! [`Recorder`](crate::result::Recorder) shards → collector thread → `Event::Batch` →
//! [`TestResult`] → outputs. An external run replaces the first steps by runner processes whose
//! events a receiver merges into the same batches; both hand their batches over through the
//! collector's delivery (`collector`).

mod collector;
mod data;
pub mod distributed;
pub mod external;
mod local;

pub use distributed::DistributedRunner;
pub use external::ExternalRunner;
pub use local::{ChangeLoad, LoadControl, LocalRunner};

pub(crate) use crate::config::plan::{Cycles, Model, Plan, Stop};
pub(crate) use crate::config::{ReportArgs, RunArgs, UsageError, new_run_id};

use std::time::Duration;

use crate::case::UnknownTest;
use crate::result::TestResult;

/// The checked load plan of `args`: the plan's own checks ([`PlanArgs::plan`]) and those of the
/// parts that the floors above the configuration own: the end-of-run notifiers' options, the
/// thresholds' expressions and the outputs' names.
pub fn checked_plan(args: &RunArgs) -> Result<Plan, RunError> {
    let plan = args.plan.plan()?;
    crate::notify::check(&args.notify).map_err(|e| UsageError::new("--notify", e.to_string()))?;
    crate::result::threshold::parse_all(&args.report.thresholds)
        .map_err(|e| UsageError::new("--threshold", e.to_string()))?;
    for name in &args.report.outputs {
        if !crate::output::OUTPUTS.iter().any(|(n, _)| n == name) {
            return Err(crate::output::unknown_output(name).into());
        }
    }
    Ok(plan)
}

/// The description of a run of `args` that outputs show: its test (or its scenarios) and
/// plan. (The plan of arguments that do not check is described as empty; runners check first.)
pub fn run_meta(args: &RunArgs) -> crate::result::RunMeta {
    let parts = args.plan.checked_scenarios().unwrap_or_default();
    let plan = match parts.as_slice() {
        [(None, plan, _)] => plan.describe(),
        parts => {
            let each: Vec<String> = parts
                .iter()
                .map(|(s, plan, after)| {
                    let name = s.map_or("", |s| s.name.as_str());
                    if after.is_zero() {
                        format!("{name}: {}", plan.describe())
                    } else {
                        format!(
                            "{name}: {}, after {}",
                            plan.describe(),
                            humantime::format_duration(*after)
                        )
                    }
                })
                .collect();
            each.join("; ")
        }
    };
    let planned_hits = parts
        .iter()
        .try_fold(0u64, |a, (_, p, _)| a.checked_add(p.total_hits()?));
    let planned_duration = parts
        .iter()
        .map(|(_, p, after)| p.total_duration().map(|d| (d + *after).as_secs_f64()))
        .try_fold(0f64, |a, d| Some(a.max(d?)));
    crate::result::RunMeta {
        run_id: args.run_id.clone(),
        test: args.plan.test(),
        project_name: args.plan.project_name.clone(),
        server_url: args.plan.server_url.clone(),
        plan,
        planned_hits: planned_hits.filter(|_| !parts.is_empty()),
        planned_duration: planned_duration.filter(|_| !parts.is_empty()),
        agents: 1,
        thresholds: args.report.thresholds.clone(),
    }
}

/// Why a run could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bad option value or combination.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The test name matches no registered test.
    #[error(transparent)]
    UnknownTest(#[from] UnknownTest),
    /// The machine refused something the runner needs (threads, runtime).
    #[error("cannot start the run: {0}")]
    System(#[from] std::io::Error),
    /// The cluster failed: no broker, a refused request, a transport error.
    #[error("{0}")]
    Cluster(String),
}

impl RunError {
    /// Whether this is the user's mistake (exit code 2) rather than the system's.
    pub fn is_usage(&self) -> bool {
        matches!(self, RunError::Usage(_) | RunError::UnknownTest(_))
    }
}

/// Something that executes a run and returns its final test result.
pub trait Runner {
    /// Runs the plan to its end (or until interrupted) and returns the finished result: the
    /// outputs have written their reports.
    fn execute(&mut self) -> Result<TestResult, RunError>;
}

/// A runner of a run in this process, as [`runner_for`] picks it for a [`RunArgs`]: a
/// registered test runs in this process, a test in another language in processes of its own.
// Both variants hold a `RunArgs`; one runner is made per run, so their sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum LocalOrExternal {
    /// A registered test, with tokio tasks as virtual users.
    Local(LocalRunner),
    /// A `--test-runner` command, one process per virtual user.
    External(ExternalRunner),
}

/// The one place that picks the runner of `args` in this process: the [`ExternalRunner`] when
/// they name a `--test-runner` command, else the [`LocalRunner`]; fails as that runner's `new`
/// does. (A run on a cluster is a [`DistributedRunner`], which the command line asks for with
/// `--agents`; its workers pick their runner here.)
pub fn runner_for(args: RunArgs) -> Result<LocalOrExternal, RunError> {
    Ok(if args.plan.test_runner.is_some() {
        LocalOrExternal::External(ExternalRunner::new(args)?)
    } else {
        LocalOrExternal::Local(LocalRunner::new(args)?)
    })
}

impl LocalOrExternal {
    /// Stops the run cleanly on Ctrl-C (and SIGTERM), as the picked runner's `handle_ctrl_c`
    /// does.
    pub fn handle_ctrl_c(self, yes: bool) -> Self {
        match self {
            LocalOrExternal::Local(r) => LocalOrExternal::Local(r.handle_ctrl_c(yes)),
            LocalOrExternal::External(r) => LocalOrExternal::External(r.handle_ctrl_c(yes)),
        }
    }

    /// How often the collector hands a batch of the run's events to the sink.
    pub fn collect_every(self, every: Duration) -> Self {
        match self {
            LocalOrExternal::Local(r) => LocalOrExternal::Local(r.collect_every(every)),
            LocalOrExternal::External(r) => LocalOrExternal::External(r.collect_every(every)),
        }
    }

    /// The agent this runner works for: given to an external runner's processes
    /// (`LOADS_AGENT_ID`); a local run does not use it.
    pub fn agent_id(self, id: &str) -> Self {
        match self {
            LocalOrExternal::Local(r) => LocalOrExternal::Local(r),
            LocalOrExternal::External(r) => LocalOrExternal::External(r.agent_id(id)),
        }
    }

    /// The run's test data, loaded and checked.
    pub fn data(&self) -> &std::sync::Arc<crate::data::DataSet> {
        match self {
            LocalOrExternal::Local(r) => r.data(),
            LocalOrExternal::External(r) => r.data(),
        }
    }

    /// The control of the run's load while it runs, for a run in this process (an external
    /// runner's processes pace themselves).
    pub fn load_control(&self) -> Option<std::sync::Arc<local::LoadControl>> {
        match self {
            LocalOrExternal::Local(r) => Some(r.load_control()),
            LocalOrExternal::External(_) => None,
        }
    }

    /// The run's checked arguments (with a run id filled in).
    pub fn args(&self) -> &RunArgs {
        match self {
            LocalOrExternal::Local(r) => r.args(),
            LocalOrExternal::External(r) => r.args(),
        }
    }
}

impl Runner for LocalOrExternal {
    fn execute(&mut self) -> Result<TestResult, RunError> {
        match self {
            LocalOrExternal::Local(r) => r.execute(),
            LocalOrExternal::External(r) => r.execute(),
        }
    }
}
