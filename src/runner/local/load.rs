//! Changes of the load while a run goes on (the dashboard's control): the number of virtual
//! users of a closed model (`--duration` cycles and `--stages`), or the arrival rate of the
//! open model (`--rate`), of the whole run or of one scenario. A [`LoadControl`] is made with
//! the runner; the caller sets a target ([`LoadControl::set`]), the drivers read it ten times
//! a second (the open model at each arrival) and add users or retire the newest ones (after
//! their current hit), or start arrivals at the new rate; the collector hands each change to
//! the test result, which keeps it in the summary (`changes`).
//!
//! A value is the run's total, as on the command line: a cluster's worker (whose plan is its
//! share, `RunArgs::plan.share`) takes its share of it the way the plan divides the load, and
//! a change of the whole run is divided among its parts of the one kind (users or rate).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::plan::{MAX_RATE, Model, Plan, Stop};
use crate::result::summary::LoadChange;

/// No target set: the plan decides.
const UNSET: u64 = u64::MAX;

/// The most users a change may ask for in one scenario (the plan's own limit).
const MAX_USERS: u64 = 1_000_000;

/// What the load of a part of the run is, and whether it can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadKind {
    /// A closed model: its users can change.
    Users,
    /// The open model: its arrival rate can change.
    Rate,
    /// Nothing can change, for this reason.
    Fixed(&'static str),
}

impl LoadKind {
    /// The kind of the load of a part with `plan`.
    pub(crate) fn of(plan: &Plan) -> LoadKind {
        match (&plan.model, &plan.stop) {
            (Model::Cycles, Stop::Hits(_)) => LoadKind::Fixed(
                "a users × hits plan keeps its users; run for a duration (-d) or by --stages to change them",
            ),
            (Model::Cycles | Model::Stages(_), _) => LoadKind::Users,
            (Model::Rate { .. }, _) => LoadKind::Rate,
        }
    }

    /// Its name on the page (`users`, `rate`, `fixed`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            LoadKind::Users => "users",
            LoadKind::Rate => "rate",
            LoadKind::Fixed(_) => "fixed",
        }
    }
}

/// What a part of the run allows.
struct PartLoad {
    name: Option<String>,
    kind: LoadKind,
    /// Users, or the bits of the rate per second (`f64`), of this process.
    target: AtomicU64,
}

/// The load targets of a run's parts, set while it runs.
pub struct LoadControl {
    parts: Vec<PartLoad>,
    /// `(index, count)`: this process's share of the run (a cluster's worker).
    share: (u64, u64),
    log: Mutex<Vec<LoadChange>>,
    /// The changes made so far (the run's summary keeps at most `MAX_CHANGES`).
    made: std::sync::atomic::AtomicUsize,
    /// The run's users are done and its last changes taken: no change can be made.
    closed: std::sync::atomic::AtomicBool,
}

/// What changes a run's load while it runs, for the dashboard: a run in this process
/// ([`LoadControl`]), or a cluster run from its caller (`ClusterLoad`, through the broker).
pub trait ChangeLoad: Send + Sync {
    /// Whether any part's load can change.
    fn can_change(&self) -> bool;
    /// What a change sets, per part: `(scenario, "users" | "rate" | "fixed")`.
    fn kinds(&self) -> Vec<(Option<String>, &'static str)>;
    /// Sets the load of `scenario` (or of the whole run) to `value`, the run's total: users
    /// for a closed model, arrivals per second for the open model. Returns what was done.
    fn set(&self, scenario: Option<&str>, value: f64) -> Result<String, String>;
}

impl ChangeLoad for LoadControl {
    /// Whether any part's load can change.
    fn can_change(&self) -> bool {
        self.parts
            .iter()
            .any(|p| !matches!(p.kind, LoadKind::Fixed(_)))
    }

    /// What can change, per part: `(scenario, "users" | "rate" | "fixed")`.
    fn kinds(&self) -> Vec<(Option<String>, &'static str)> {
        self.parts
            .iter()
            .map(|p| (p.name.clone(), p.kind.name()))
            .collect()
    }

    /// Sets the load of `scenario` (or of the whole run) to `value`, the run's total: users
    /// for a closed model, arrivals per second for the open model. Returns what was done.
    fn set(&self, scenario: Option<&str>, value: f64) -> Result<String, String> {
        // One change at a time: the targets are those of the last change recorded (two
        // dashboards changing at once could otherwise leave one's targets and the other's record).
        let mut log = self
            .log
            .lock()
            .map_err(|_| "the load control failed".to_owned())?;
        let checked = self.check(scenario, value)?;
        if checked.users {
            // This process's users after the change, a connection each: they must fit in the
            // open-file limit (raised up to the hard one), as the plan's had to at the start.
            let users: u64 = self
                .parts
                .iter()
                .filter(|p| p.kind == LoadKind::Users)
                .map(
                    |p| match checked.parts.iter().find(|(c, _)| std::ptr::eq(*c, p)) {
                        Some((_, v)) => *v,
                        None => Some(p.target.load(Ordering::SeqCst))
                            .filter(|t| *t != UNSET)
                            .unwrap_or(0),
                    },
                )
                .sum();
            super::ensure_open_files(users).map_err(|e| e.to_string())?;
        }
        for (p, v) in &checked.parts {
            p.target.store(*v, Ordering::SeqCst);
        }
        let what = checked.change.what.clone();
        log.push(checked.change);
        self.made.fetch_add(1, Ordering::SeqCst);
        Ok(what)
    }
}

/// A checked change: what each part gets, and its record.
struct Checked<'a> {
    parts: Vec<(&'a PartLoad, u64)>,
    change: LoadChange,
    /// It sets users (not a rate).
    users: bool,
}

impl LoadControl {
    /// For parts `(scenario name, kind of load)`; `share`: this process's share of the run.
    pub(crate) fn new(parts: Vec<(Option<String>, LoadKind)>, share: (u64, u64)) -> Self {
        LoadControl {
            parts: parts
                .into_iter()
                .map(|(name, kind)| PartLoad {
                    name,
                    kind,
                    target: AtomicU64::new(UNSET),
                })
                .collect(),
            share: (share.0, share.1.max(1)),
            log: Mutex::new(Vec::new()),
            made: std::sync::atomic::AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Checks a change without making it (a cluster's caller, before it asks the broker);
    /// returns its record.
    pub fn validate(&self, scenario: Option<&str>, value: f64) -> Result<LoadChange, String> {
        self.check(scenario, value).map(|c| c.change)
    }

    fn check(&self, scenario: Option<&str>, value: f64) -> Result<Checked<'_>, String> {
        if !value.is_finite() || value < 0.0 {
            return Err("the value must be a number ≥ 0".into());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err("the run has ended: its load no longer changes".into());
        }
        // -0 is 0 (and shows as 0 in the record).
        let value = if value == 0.0 { 0.0 } else { value };
        if self.made.load(Ordering::SeqCst) >= crate::result::MAX_CHANGES {
            return Err(format!(
                "this run made {} load changes already, all its summary keeps",
                crate::result::MAX_CHANGES
            ));
        }
        let chosen: Vec<&PartLoad> = match scenario {
            Some(name) => vec![
                self.parts
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .ok_or_else(|| format!("no scenario {name:?} in this run"))?,
            ],
            None => self
                .parts
                .iter()
                .filter(|p| !matches!(p.kind, LoadKind::Fixed(_)))
                .collect(),
        };
        let Some(first) = chosen.first() else {
            return Err(match self.parts.first().map(|p| p.kind) {
                Some(LoadKind::Fixed(why)) => why.into(),
                _ => "this run cannot change its load".into(),
            });
        };
        let kind = first.kind;
        if let LoadKind::Fixed(why) = kind {
            return Err(why.into());
        }
        if chosen.iter().any(|p| p.kind != kind) {
            return Err(
                "this run mixes closed-model scenarios (users) and open-model ones (rate): change one scenario at a time".into(),
            );
        }
        let n = chosen.len() as u64;
        let (index, count) = self.share;
        let parts: Vec<(&PartLoad, u64)> = match kind {
            LoadKind::Users => {
                if value.fract() != 0.0 {
                    return Err("users are a whole number".into());
                }
                if value > (MAX_USERS.saturating_mul(n) as f64) {
                    return Err(format!("at most {MAX_USERS} users per scenario"));
                }
                let here = crate::config::share_of(value as u64, (index, count));
                chosen
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (*p, crate::config::share_of(here, (i as u64, n))))
                    .collect()
            }
            LoadKind::Rate => {
                if value > MAX_RATE * n as f64 * count as f64 {
                    return Err(format!(
                        "at most {MAX_RATE} arrivals per second per scenario and process"
                    ));
                }
                let each = value / count as f64 / n as f64;
                chosen.iter().map(|p| (*p, each.to_bits())).collect()
            }
            LoadKind::Fixed(_) => unreachable!("refused above"),
        };
        let (what, users, rate) = match (kind, scenario) {
            (LoadKind::Rate, Some(s)) => (
                format!("arrival rate of scenario {s} set to {value}/s"),
                None,
                Some(value),
            ),
            (LoadKind::Rate, None) => (format!("arrival rate set to {value}/s"), None, Some(value)),
            (_, Some(s)) => (
                format!("users of scenario {s} set to {value}"),
                Some(value as u64),
                None,
            ),
            (_, None) => (format!("users set to {value}"), Some(value as u64), None),
        };
        Ok(Checked {
            parts,
            users: kind == LoadKind::Users,
            change: LoadChange {
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                scenario: scenario.map(str::to_owned),
                users,
                rate,
                what,
            },
        })
    }

    /// The users part `index` must have now, when a change set them.
    pub(super) fn target(&self, index: usize) -> Option<u64> {
        self.parts
            .get(index)
            .filter(|p| p.kind == LoadKind::Users)
            .map(|p| p.target.load(Ordering::SeqCst))
            .filter(|t| *t != UNSET)
    }

    /// The arrival rate (per second, of this process) part `index` must have now, when a
    /// change set it.
    pub(super) fn rate(&self, index: usize) -> Option<f64> {
        self.parts
            .get(index)
            .filter(|p| p.kind == LoadKind::Rate)
            .map(|p| p.target.load(Ordering::SeqCst))
            .filter(|t| *t != UNSET)
            .map(f64::from_bits)
    }

    /// Whether part `index`'s rate can change (the open model then looks for changes).
    pub(super) fn rate_changes(&self, index: usize) -> bool {
        self.parts
            .get(index)
            .is_some_and(|p| p.kind == LoadKind::Rate)
    }

    /// The last changes, at the end of the run: from now on every change is refused (none
    /// would be made, nor recorded).
    pub(crate) fn close(&self) -> Vec<LoadChange> {
        self.log
            .lock()
            .map(|mut l| {
                self.closed.store(true, Ordering::SeqCst);
                std::mem::take(&mut *l)
            })
            .unwrap_or_default()
    }

    /// The changes since the last call, in order.
    pub(crate) fn take_changes(&self) -> Vec<LoadChange> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Records a change made elsewhere (a cluster's caller, once the broker passed it on).
    pub(crate) fn record(&self, change: LoadChange) {
        if let Ok(mut log) = self.log.lock() {
            log.push(change);
            self.made.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: LoadKind = LoadKind::Fixed("b runs users × hits");

    #[test]
    fn targets_divide_among_the_parts_that_can_change() {
        let c = LoadControl::new(
            vec![
                (Some("a".into()), LoadKind::Users),
                (Some("b".into()), FIXED),
                (Some("c".into()), LoadKind::Users),
            ],
            (0, 1),
        );
        assert!(c.can_change());
        assert_eq!(c.target(0), None);
        c.set(None, 21.0).expect("set");
        assert_eq!(
            (c.target(0), c.target(1), c.target(2)),
            (Some(11), None, Some(10))
        );
        c.set(Some("c"), 3.0).expect("set");
        assert_eq!(c.target(2), Some(3));
        assert_eq!(c.set(Some("b"), 3.0), Err("b runs users × hits".into()));
        assert!(c.set(Some("nope"), 3.0).is_err());
        assert!(c.set(None, 2.5).is_err(), "users are whole");
        assert!(c.set(None, -1.0).is_err());
        assert!(c.set(None, f64::NAN).is_err());
        assert_eq!(
            c.set(Some("a"), -0.0).as_deref(),
            Ok("users of scenario a set to 0")
        );
        assert_eq!(c.target(0), Some(0));
        let log = c.take_changes();
        assert_eq!(log.len(), 3);
        assert_eq!(log[1].what, "users of scenario c set to 3");
        assert_eq!(log[1].users, Some(3));
        assert!(c.take_changes().is_empty());
        let fixed = LoadControl::new(vec![(None, LoadKind::Fixed("no"))], (0, 1));
        assert!(!fixed.can_change());
        assert_eq!(fixed.set(None, 1.0), Err("no".into()));
    }

    #[test]
    fn a_worker_takes_its_share_of_the_total() {
        // Agent 1 of 3: users as the plan divides them (the first ones take the remainder),
        // the rate in exact thirds.
        let c = LoadControl::new(
            vec![
                (Some("closed".into()), LoadKind::Users),
                (Some("open".into()), LoadKind::Rate),
            ],
            (1, 3),
        );
        c.set(Some("closed"), 20.0).expect("users");
        assert_eq!(c.target(0), Some(7));
        c.set(Some("open"), 90.0).expect("rate");
        assert_eq!(c.rate(1), Some(30.0));
        assert_eq!(c.target(1), None, "a rate is not a users target");
        assert!(
            c.set(None, 5.0).is_err(),
            "a whole-run change of mixed kinds"
        );
        let log = c.take_changes();
        assert_eq!(log[1].rate, Some(90.0));
        assert_eq!(log[1].what, "arrival rate of scenario open set to 90/s");
        let open = LoadControl::new(vec![(None, LoadKind::Rate)], (0, 1));
        assert!(open.rate_changes(0));
        assert_eq!(open.rate(0), None);
        open.set(None, 0.0).expect("a pause");
        assert_eq!(open.rate(0), Some(0.0));
        assert!(open.set(None, 1e12).is_err());
    }

    #[test]
    fn no_change_is_made_once_the_run_has_taken_its_last_ones() {
        let c = LoadControl::new(vec![(None, LoadKind::Users)], (0, 1));
        c.set(None, 4.0).expect("running");
        assert_eq!(c.close().len(), 1);
        assert!(c.set(None, 5.0).is_err(), "a change nothing would make");
        assert_eq!(c.target(0), Some(4));
        assert!(c.take_changes().is_empty());
    }

    #[test]
    fn a_change_beyond_those_the_summary_keeps_is_refused() {
        let c = LoadControl::new(vec![(None, LoadKind::Users)], (0, 1));
        for i in 0..crate::result::MAX_CHANGES {
            c.set(None, (i % 7) as f64).expect("kept");
            // The collector takes them once a second.
            c.take_changes();
        }
        let last = Some(((crate::result::MAX_CHANGES - 1) % 7) as u64);
        assert_eq!(c.target(0), last);
        assert!(
            c.set(None, 3.0).is_err(),
            "a change the summary would not show"
        );
        assert!(c.validate(None, 3.0).is_err());
        assert_eq!(c.target(0), last);
        assert!(c.take_changes().is_empty());
    }

    #[test]
    fn concurrent_changes_leave_the_targets_of_the_last_one_recorded() {
        let c = std::sync::Arc::new(LoadControl::new(
            vec![
                (Some("a".into()), LoadKind::Users),
                (Some("b".into()), LoadKind::Users),
            ],
            (0, 1),
        ));
        let mut mismatches = 0;
        for round in 0..2000u64 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let (c, barrier) = (c.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        c.set(None, (((round * 4 + t) % 100) * 2) as f64)
                            .map(|_| ())
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().ok(), Some(Ok(())));
            }
            let log = c.take_changes();
            assert_eq!(log.len(), 4, "every change recorded");
            let last = log.last().and_then(|l| l.users);
            let now = c.target(0).zip(c.target(1)).map(|(a, b)| a + b);
            if last != now || !log.is_sorted_by(|a, b| a.time <= b.time) {
                mismatches += 1;
            }
        }
        assert_eq!(
            mismatches, 0,
            "rounds whose targets are not the last record's"
        );
    }
}
