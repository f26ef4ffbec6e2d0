//! Per-worker recording: virtual users write into one of a few [`Stats`] shards, and a collector
//! drains the shards periodically into a batch.
//!
//! A shard is a mutex that only the virtual users mapped to it (and the collector, a few times a
//! second) ever take, so recording costs an uncontended lock, never a global one. Data enters
//! through [`Recorder::record`] from the HTTP session, the WebSocket client and the test runner;
//! it leaves through [`Recorder::drain_into`]. A request goes through
//! [`Recorder::record_request`]: its shard keeps the requests of its most requested URLs
//! apart, found by the session's key without a map lookup, and adds them to its stats when it
//! is drained.

use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::event::{Event, LoadsStatus};
use super::per_test::{Hit, TestStats};
use super::stats::{RequestStats, Stats, count_hit};
use super::timeline::Second;

/// A shard on its own cache line, so that neighbouring shards do not share one.
#[repr(align(128))]
struct Shard(Mutex<ShardStats>);

/// What a shard holds: the stats its users record, and apart from them the requests of the
/// URLs they request most, found by the session's key (an `Arc`: a pointer comparison, then a
/// comparison of the text) instead of two map lookups by text per request. A drain adds the
/// hot URLs' requests to the stats first, so that what leaves is the same as if every request
/// had been recorded in the stats one by one.
#[derive(Default)]
struct ShardStats {
    stats: Stats,
    hot: Vec<HotUrl>,
    /// The same for the tests its users run, by the mix's name (`Arc`: a pointer comparison).
    hot_tests: Vec<(Arc<str>, TestStats)>,
    /// The timeline second its users record in now (and what they recorded in it), apart from
    /// the stats' timeline: a map lookup less per request and per hit.
    now: Option<(i64, Second)>,
}

/// The requests of one hot URL and method since the last drain.
struct HotUrl {
    key: Arc<str>,
    method: Box<str>,
    /// Its requests, but for the last run of responses of one status, counted apart (most
    /// responses have the status of the previous one: a comparison instead of a map entry).
    requests: RequestStats,
    status: u16,
    same_status: u64,
}

impl HotUrl {
    fn record(&mut self, status: u16, micros: u64) {
        self.requests.count += 1;
        if status != self.status {
            self.count_statuses();
            self.status = status;
        }
        self.same_status += 1;
        self.requests.latency.record(micros);
    }

    /// Moves the run of responses of one status into the status counts.
    fn count_statuses(&mut self) {
        if self.same_status > 0 {
            let n = self.requests.statuses.entry(self.status).or_insert(0);
            *n = n.saturating_add(self.same_status);
            self.same_status = 0;
        }
    }
}

/// Hot URLs, and hot tests, per shard; the others are recorded in the stats directly.
const HOT_KEYS: usize = 8;

impl ShardStats {
    fn record_request(
        &mut self,
        method: &str,
        key: &Arc<str>,
        status: u16,
        micros: u64,
        second: i64,
    ) {
        let found = self
            .hot
            .iter()
            .position(|h| Arc::ptr_eq(&h.key, key) && *h.method == *method)
            .or_else(|| {
                self.hot
                    .iter()
                    .position(|h| *h.key == **key && *h.method == *method)
            });
        let i = match found {
            Some(i) => i,
            None if self.hot.len() < HOT_KEYS => {
                self.hot.push(HotUrl {
                    key: key.clone(),
                    method: method.into(),
                    requests: RequestStats::default(),
                    status,
                    same_status: 0,
                });
                self.hot.len() - 1
            }
            None => {
                return self
                    .stats
                    .record_request(method, key, status, micros, second);
            }
        };
        self.hot[i].record(status, micros);
        let s = self.second(second);
        s.requests += 1;
        s.latency_mut().record(micros);
    }

    /// The current second, `second` (the previous one goes to the stats' timeline).
    fn second(&mut self, second: i64) -> &mut Second {
        if self.now.as_ref().is_some_and(|(s, _)| *s != second) {
            self.flush_second();
        }
        &mut self
            .now
            .get_or_insert_with(|| (second, Second::default()))
            .1
    }

    fn flush_second(&mut self) {
        if let Some((second, s)) = self.now.take() {
            self.stats.add_second(second, &s);
        }
    }

    fn record_hit(&mut self, test: &Arc<str>, hit: &Hit<'_>) {
        let i = match self
            .hot_tests
            .iter()
            .position(|(t, _)| Arc::ptr_eq(t, test))
        {
            Some(i) => i,
            None if self.hot_tests.len() < HOT_KEYS => {
                self.hot_tests.push((test.clone(), TestStats::default()));
                self.hot_tests.len() - 1
            }
            None => return self.stats.record_hit(hit),
        };
        self.hot_tests[i].1.record(&hit.outcome, hit.micros);
        self.stats.record_hit_beside_test(hit);
        count_hit(self.second(hit.second), hit.outcome.problem_kind());
    }

    /// Moves the current second, the hot URLs' requests and the hot tests' hits into the stats
    /// (the URLs and tests stay hot).
    fn flush(&mut self) {
        self.flush_second();
        for (name, t) in &mut self.hot_tests {
            if !t.is_empty() {
                self.stats.add_test_hits(name, t);
                t.reset();
            }
        }
        for h in &mut self.hot {
            h.count_statuses();
            if h.requests.count > 0 {
                self.stats.add_url_requests(&h.method, &h.key, &h.requests);
                h.requests.reset();
            }
        }
    }
}

/// The recording shards of one run.
pub struct Recorder {
    shards: Box<[Shard]>,
    /// Raw mode (`--raw-events`): every event goes here, one by one, instead of the shards.
    raw: Option<SyncSender<Event>>,
    raw_rx: Mutex<Option<Receiver<Event>>>,
    /// Emptied stats swapped into the shards on each drain, so that the merge happens outside
    /// the shard's lock and allocations are reused. Only the collector takes this lock.
    spares: Mutex<Vec<Stats>>,
}

impl Recorder {
    /// A recorder with `shards` shards (at least one).
    pub fn new(shards: usize) -> Self {
        let n = shards.max(1);
        let shards = (0..n)
            .map(|_| Shard(Mutex::new(ShardStats::default())))
            .collect();
        let spares = Mutex::new((0..n).map(|_| Stats::default()).collect());
        Recorder {
            shards,
            spares,
            raw: None,
            raw_rx: Mutex::new(None),
        }
    }

    /// A recorder in raw mode: users send every event, one by one, through a channel of
    /// `capacity` events (a full channel makes them wait: raw mode is for debugging and
    /// external tools, not for top speed).
    pub fn raw(shards: usize, capacity: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        let mut r = Self::new(shards);
        r.raw = Some(tx);
        r.raw_rx = Mutex::new(Some(rx));
        r
    }

    /// Hands every raw event received so far to `f`.
    pub fn drain_raw(&self, mut f: impl FnMut(Event)) {
        let guard = self.raw_rx.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = guard.as_ref() {
            while let Ok(e) = rx.try_recv() {
                f(e);
            }
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Runs `f` on shard `shard` (taken modulo the shard count).
    pub fn record<R>(&self, shard: usize, f: impl FnOnce(&mut Stats) -> R) -> R {
        let s = &self.shards[shard % self.shards.len()];
        // A panic cannot happen while a shard is held (recording does not call user code), but
        // if it ever did the counts are still consistent: keep using them.
        let mut g = s.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g.stats)
    }

    /// Records on shard `shard` a request of `method` to the URL counted under `key`, as
    /// [`Stats::record_request`] does (see [`ShardStats`]).
    pub fn record_request(
        &self,
        shard: usize,
        method: &str,
        key: &Arc<str>,
        status: u16,
        micros: u64,
        second: i64,
    ) {
        let s = &self.shards[shard % self.shards.len()];
        let mut g = s.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.record_request(method, key, status, micros, second);
    }

    /// Records on shard `shard` the hit `hit` of the test named `test` (the mix's name, whose
    /// text is `hit.test`), as [`Stats::record_hit`] does (see [`ShardStats`]).
    pub fn record_hit(&self, shard: usize, test: &Arc<str>, hit: &Hit<'_>) {
        let s = &self.shards[shard % self.shards.len()];
        let mut g = s.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.record_hit(test, hit);
    }

    /// Adds every shard's content to `target` and resets the shards. Each shard is locked only
    /// for the time of a swap with an empty spare.
    pub fn drain_into(&self, target: &mut Stats) {
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        for (s, spare) in self.shards.iter().zip(spares.iter_mut()) {
            {
                let mut g = s.0.lock().unwrap_or_else(PoisonError::into_inner);
                g.flush();
                if g.stats.is_empty() {
                    continue;
                }
                std::mem::swap(&mut g.stats, spare);
            }
            target.merge(spare);
            spare.reset();
        }
    }
}

/// A virtual user's handle on the run's [`Recorder`]: the shard it writes to (the shard of the
/// worker thread it runs on).
#[derive(Clone)]
pub struct UserRecorder {
    recorder: Arc<Recorder>,
    shard: usize,
    status: Arc<Mutex<LoadsStatus>>,
    /// Open model: how late the current hit started, in µs (`u64::MAX`: closed model).
    lag: Arc<std::sync::atomic::AtomicU64>,
}

impl UserRecorder {
    /// A handle that writes to shard `shard` (taken modulo the shard count).
    pub fn new(recorder: Arc<Recorder>, shard: usize) -> Self {
        let shard = shard % recorder.shards();
        UserRecorder {
            recorder,
            shard,
            status: Arc::default(),
            lag: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
        }
    }

    /// A handle on the same shard for another user (a status and lag of its own).
    pub fn fresh(&self) -> UserRecorder {
        UserRecorder::new(self.recorder.clone(), self.shard)
    }

    /// Open model: the current hit started `micros` after its intended start (request times
    /// count from the intended start); `None` in a closed model.
    pub fn set_lag(&self, micros: Option<u64>) {
        self.lag.store(
            micros.map_or(u64::MAX, |m| m.min(u64::MAX - 1)),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How late the current hit started (open model), in µs.
    pub fn lag(&self) -> Option<u64> {
        let l = self.lag.load(std::sync::atomic::Ordering::Relaxed);
        (l != u64::MAX).then_some(l)
    }

    /// The raw-event channel, in raw mode.
    pub fn raw(&self) -> Option<&SyncSender<Event>> {
        self.recorder.raw.as_ref()
    }

    /// Sends `event` in raw mode (and says whether it did): the caller records into the shard
    /// otherwise.
    /// (Inlined, so that outside raw mode it costs the caller one test; the event is made
    /// and sent out of line.)
    #[inline]
    pub fn send_raw(&self, event: impl FnOnce(LoadsStatus) -> Event) -> bool {
        match self.raw() {
            Some(tx) => {
                self.send_event(tx, event);
                true
            }
            None => false,
        }
    }

    /// Makes the event and sends it (raw mode).
    #[cold]
    #[inline(never)]
    fn send_event(&self, tx: &SyncSender<Event>, event: impl FnOnce(LoadsStatus) -> Event) {
        let _ = tx.send(event(self.status()));
    }

    /// The user's current loads_status.
    pub fn status(&self) -> LoadsStatus {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the user's current loads_status (only kept in raw mode, where events carry it).
    pub fn set_status(&self, s: LoadsStatus) {
        if self.raw().is_some() {
            *self.status.lock().unwrap_or_else(PoisonError::into_inner) = s;
        }
    }

    /// Runs `f` on this user's shard.
    pub fn record<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        self.recorder.record(self.shard, f)
    }

    /// Records a hit on this user's shard (see [`Recorder::record_hit`]).
    pub fn record_hit(&self, test: &Arc<str>, hit: &Hit<'_>) {
        self.recorder.record_hit(self.shard, test, hit);
    }

    /// Records a request on this user's shard (see [`Recorder::record_request`]).
    pub fn record_request(
        &self,
        method: &str,
        key: &Arc<str>,
        status: u16,
        micros: u64,
        second: i64,
    ) {
        self.recorder
            .record_request(self.shard, method, key, status, micros, second);
    }
}

/// The current unix time in whole seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

thread_local! {
    /// The last second [`unix_second_at`] computed on this thread: the instants it spans and
    /// its number.
    static LAST_SECOND: std::cell::Cell<Option<(Instant, Instant, i64)>> =
        const { std::cell::Cell::new(None) };
}

/// The unix second in which the monotonic instant `at` falls (from one wall-clock reading per
/// process, so that recording a request reads the clock once). Two comparisons of instants
/// when `at` falls in the same second as the previous call on this thread (every request but
/// one a second), instead of a subtraction of instants and a division.
pub fn unix_second_at(at: Instant) -> i64 {
    if let Some((from, to, second)) = LAST_SECOND.get()
        && from <= at
        && at < to
    {
        return second;
    }
    let second = unix_second_of(at);
    if let Some(from) = second_start(at) {
        LAST_SECOND.set(
            from.checked_add(Duration::from_secs(1))
                .map(|to| (from, to, second)),
        );
    }
    second
}

/// The instant at which the second of `at` began (`None` before the process's clock base).
fn second_start(at: Instant) -> Option<Instant> {
    let (base, wall) = clock_base();
    let since = at.checked_duration_since(*base)?;
    let t = *wall + since;
    at.checked_sub(Duration::from_nanos(u64::from(t.subsec_nanos())))
}

/// One monotonic instant and the wall-clock time then, read once per process.
fn clock_base() -> &'static (Instant, Duration) {
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
    BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (Instant::now(), wall)
    })
}

/// [`unix_second_at`] without the per-thread memory.
fn unix_second_of(at: Instant) -> i64 {
    let (base, wall) = clock_base();
    let t = match at.checked_duration_since(*base) {
        Some(d) => *wall + d,
        None => wall.saturating_sub(base.duration_since(at)),
    };
    t.as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_seconds_follow_the_wall_clock() {
        let a = unix_now();
        let b = unix_second_at(Instant::now());
        assert!((b - a).abs() <= 1, "{a} vs {b}");
        let later = unix_second_at(Instant::now() + Duration::from_secs(5));
        assert!((later - b - 5).abs() <= 1);
        // The per-thread memory of the last second answers as the computation does, at its
        // bounds too.
        let now = Instant::now();
        for ms in [0, 1, 250, 999, 1000, 1001, 3500, 0, 1000] {
            let at = now + Duration::from_millis(ms);
            assert_eq!(unix_second_at(at), unix_second_of(at), "{ms} ms");
        }
        if let Some(start) = second_start(now) {
            let before = start.checked_sub(Duration::from_nanos(1));
            assert_eq!(unix_second_at(start), unix_second_of(start));
            if let Some(before) = before {
                assert_eq!(unix_second_at(before), unix_second_of(start) - 1);
            }
        }
    }

    #[test]
    fn hot_urls_and_tests_drain_as_if_recorded_one_by_one() {
        // 12 URLs (more than HOT_KEYS), each under two keys of the same text (two users'
        // sessions), two methods, statuses and seconds that vary; drained twice.
        let keys: Vec<Arc<str>> = (0..24)
            .map(|i| Arc::from(format!("http://h/{}", i % 12)))
            .collect();
        // And 11 tests (more than the hot ones), with hits of every outcome.
        let tests: Vec<Arc<str>> = (0..11).map(|i| Arc::from(format!("suite::t{i}"))).collect();
        let rec = Recorder::new(1);
        let mut direct = Stats::default();
        let mut drained = Stats::default();
        for round in 0..2u64 {
            for i in 0..5_000u64 {
                let key = &keys[(i * 7 % 24) as usize];
                let method = if i % 5 == 0 { "POST" } else { "GET" };
                let status = if i % 11 == 0 { 500 } else { 200 };
                let (micros, second) = (i % 997 + round, (i / 1_000) as i64);
                rec.record_request(0, method, key, status, micros, second);
                direct.record_request(method, key, status, micros, second);
                let name = &tests[(i % 11) as usize];
                let message = format!("m{}", i % 3);
                let hit = Hit {
                    test: name,
                    scenario: (i % 2 == 0).then_some("s"),
                    micros: (i % 13 != 0).then_some(micros),
                    second,
                    outcome: if status == 500 {
                        crate::result::HitOutcome::Problem {
                            outcome: crate::result::ProblemKind::Failure,
                            message: &message,
                            kind: "k",
                            traceback: "",
                        }
                    } else {
                        crate::result::HitOutcome::Success
                    },
                };
                rec.record_hit(0, name, &hit);
                direct.record_hit(&hit);
            }
            rec.drain_into(&mut drained);
        }
        assert_eq!(drained.requests.count, 10_000);
        assert_eq!(drained, direct);
        let mut again = Stats::default();
        rec.drain_into(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn shards_drain_to_exact_totals() {
        let rec = Arc::new(Recorder::new(4));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        rec.record(t, |s| s.record_request("GET", "/", 200, i % 100, 0));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut total = Stats::default();
        rec.drain_into(&mut total);
        assert_eq!(total.requests.count, 80_000);
        let mut again = Stats::default();
        rec.drain_into(&mut again);
        assert!(again.is_empty());
    }
}
