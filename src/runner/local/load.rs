//! Changes of the load while a local run goes on (the dashboard's control): the number of
//! virtual users of a closed model (`--duration` cycles and `--stages`) of the whole run or of
//! one scenario. A [`LoadControl`] is made with the runner; the caller sets a target
//! ([`LoadControl::set_users`]), the drivers read it ten times a second and add users or retire
//! the newest ones (after their current hit), and the collector hands each change to the test
//! result, which keeps it in the summary (`changes`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::result::summary::LoadChange;

/// No target set: the plan decides.
const UNSET: u64 = u64::MAX;

/// The most users a change may ask for in one scenario (the plan's own limit).
const MAX_USERS: u64 = 1_000_000;

/// What a part of the run allows.
struct PartLoad {
    name: Option<String>,
    /// Why its users cannot change, if they cannot.
    fixed: Option<&'static str>,
    target: AtomicU64,
}

/// The load targets of a run's parts, set while it runs.
pub struct LoadControl {
    parts: Vec<PartLoad>,
    log: Mutex<Vec<LoadChange>>,
}

impl LoadControl {
    /// For parts `(scenario name, why its users cannot change)`.
    pub(super) fn new(parts: Vec<(Option<String>, Option<&'static str>)>) -> Self {
        LoadControl {
            parts: parts
                .into_iter()
                .map(|(name, fixed)| PartLoad {
                    name,
                    fixed,
                    target: AtomicU64::new(UNSET),
                })
                .collect(),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Whether any part's users can change.
    pub fn can_change(&self) -> bool {
        self.parts.iter().any(|p| p.fixed.is_none())
    }

    /// Sets the users of `scenario` (or of the whole run: divided among its parts whose users
    /// can change, the remainder to the first); returns what was done.
    pub fn set_users(&self, scenario: Option<&str>, users: u64) -> Result<String, String> {
        let chosen: Vec<&PartLoad> = match scenario {
            Some(name) => {
                let p = self
                    .parts
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .ok_or_else(|| format!("no scenario {name:?} in this run"))?;
                vec![p]
            }
            None => self.parts.iter().filter(|p| p.fixed.is_none()).collect(),
        };
        if let Some(why) = chosen
            .iter()
            .find_map(|p| p.fixed)
            .or(if chosen.is_empty() {
                self.parts.first().and_then(|p| p.fixed)
            } else {
                None
            })
        {
            return Err(why.into());
        }
        let n = chosen.len() as u64;
        if users > MAX_USERS.saturating_mul(n.max(1)) {
            return Err(format!("at most {MAX_USERS} users per scenario"));
        }
        for (i, p) in chosen.iter().enumerate() {
            let share = crate::config::share_of(users, (i as u64, n));
            p.target.store(share, Ordering::SeqCst);
        }
        let what = match scenario {
            Some(s) => format!("users of scenario {s} set to {users}"),
            None => format!("users set to {users}"),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(LoadChange {
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                scenario: scenario.map(str::to_owned),
                users,
                what: what.clone(),
            });
        }
        Ok(what)
    }

    /// The users part `index` must have now, when a change set them.
    pub(super) fn target(&self, index: usize) -> Option<u64> {
        self.parts
            .get(index)
            .map(|p| p.target.load(Ordering::SeqCst))
            .filter(|t| *t != UNSET)
    }

    /// The changes since the last call, in order.
    pub(super) fn take_changes(&self) -> Vec<LoadChange> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_divide_among_the_parts_that_can_change() {
        let c = LoadControl::new(vec![
            (Some("a".into()), None),
            (Some("b".into()), Some("b runs users × hits")),
            (Some("c".into()), None),
        ]);
        assert!(c.can_change());
        assert_eq!(c.target(0), None);
        c.set_users(None, 21).expect("set");
        assert_eq!(
            (c.target(0), c.target(1), c.target(2)),
            (Some(11), None, Some(10))
        );
        c.set_users(Some("c"), 3).expect("set");
        assert_eq!(c.target(2), Some(3));
        assert_eq!(c.set_users(Some("b"), 3), Err("b runs users × hits".into()));
        assert!(c.set_users(Some("nope"), 3).is_err());
        let log = c.take_changes();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].what, "users of scenario c set to 3");
        assert!(c.take_changes().is_empty());
        let fixed = LoadControl::new(vec![(None, Some("no"))]);
        assert!(!fixed.can_change());
        assert_eq!(fixed.set_users(None, 1), Err("no".into()));
    }
}
