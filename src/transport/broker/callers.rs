//! Callers' requests on the front socket: ping, blobs, runs (start, list, get, stop, purge,
//! stop one agent's worker),
//! each answered as the caller's key allows (its own runs, or every run for an admin).

use super::*;

/// The longest scenario name a load change may carry.
const MAX_SCENARIO_NAME: usize = 256;

impl Broker {
    /// Passes a load change of `run_id` on to its agents still running: each worker takes its
    /// share of the total, as the plan divides it (see [`CallerRequest::Load`]).
    fn change_load(
        &mut self,
        run_id: &str,
        scenario: Option<String>,
        value: f64,
        back: &zmq::Socket,
    ) -> Value {
        if !value.is_finite() || value < 0.0 {
            return refuse("invalid", "the value must be a number ≥ 0".into());
        }
        if scenario
            .as_ref()
            .is_some_and(|s| s.len() > MAX_SCENARIO_NAME)
        {
            return refuse("invalid", "no such scenario".into());
        }
        let Some(run) = self.runs.get(run_id).filter(|r| self.may_see(&r.owner)) else {
            return refuse(
                "unknown_run",
                format!("no active run {run_id:?} (`loads runs` lists them)"),
            );
        };
        if run.stopped {
            return refuse("stopping", "the run is stopping".into());
        }
        if !run.going {
            return refuse(
                "not_started",
                "the run waits for its workers: change its load once it has started".into(),
            );
        }
        let running: Vec<&String> = run
            .agents
            .iter()
            .filter(|a| !run.done.contains_key(*a) && !run.exited.contains_key(*a))
            .collect();
        let Ok(frame) = to_frame(&ToAgent::Load {
            run_id: run_id.to_owned(),
            scenario,
            value,
        }) else {
            return refuse("invalid", "the change does not encode".into());
        };
        for a in &running {
            let _ = back.send_multipart([a.as_bytes(), &frame], 0);
        }
        ok(json!({ "agents": running.len(), "of": run.agents.len() }))
    }

    /// Whether the caller of the request being handled may see and act on `owner`'s runs.
    pub(super) fn may_see(&self, owner: &str) -> bool {
        self.caller_admin || owner == self.caller
    }

    pub(super) fn ping(&self) -> PingInfo {
        // A caller sees its own runs only (an admin, or anyone without CURVE, sees all).
        let visible = |run: &str| self.runs.get(run).is_some_and(|r| self.may_see(&r.owner));
        PingInfo {
            pid: std::process::id(),
            frontend: self.bound["frontend"].clone(),
            backend: self.bound["backend"].clone(),
            receiver: self.bound["receiver"].clone(),
            publisher: self.bound["publisher"].clone(),
            heartbeat: self.bound["heartbeat"].clone(),
            agents: self
                .agents
                .iter()
                .map(|(id, a)| AgentStatus {
                    id: id.clone(),
                    host: a.host.clone(),
                    pid: a.pid,
                    busy: a.busy.as_ref().map(|r| {
                        if visible(r) {
                            r.clone()
                        } else if !self.runs.contains_key(r) {
                            "a run of an earlier broker: its worker outlived a restart".into()
                        } else {
                            "another caller's run".into()
                        }
                    }),
                    last_heartbeat: a.last_seen.elapsed().as_secs_f64(),
                })
                .collect(),
            active_runs: self.runs.keys().filter(|r| visible(r)).cloned().collect(),
            curve: self.opts.keys.is_some(),
            rejected: self.rejected,
            refused_keys: self.refused_keys.load(Ordering::Relaxed),
        }
    }

    pub(super) fn binary_path(&self, sha: &str) -> Option<PathBuf> {
        // Only plain hex names: a hash from the network never becomes a path elsewhere.
        self.uploads.path(sha)
    }

    pub(super) fn on_caller(
        &mut self,
        frames: Vec<Vec<u8>>,
        user: &str,
        front: &zmq::Socket,
        back: &zmq::Socket,
    ) {
        // REQ envelope: identity, [request id (REQ_CORRELATE)], empty delimiter; then the
        // request and, for `put_binary`, the bytes. The reply goes back in the same envelope.
        let Some(delimiter) = frames.iter().take(3).position(Vec::is_empty) else {
            self.rejected += 1;
            return;
        };
        let (envelope, rest) = frames.split_at(delimiter + 1);
        let Some(request) = rest.first() else {
            self.rejected += 1;
            return;
        };
        match &self.opts.keys {
            Some(k) => {
                self.caller = user.to_owned();
                self.caller_admin = k.roles.is_admin(user);
            }
            None => {
                self.caller = crate::transport::hex(&frames[0]);
                self.caller_admin = true;
            }
        }
        let reply = match from_frame::<CallerRequest>(request) {
            Err(e) => {
                self.rejected += 1;
                refuse("bad_request", format!("bad request: {e}"))
            }
            Ok(req) => {
                // What callers read from the database must include every event published so far.
                self.flush(false);
                self.handle(req, rest.get(1).map(Vec::as_slice), back)
            }
        };
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        let reply: Vec<&[u8]> = envelope
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(body.as_slice()))
            .collect();
        let _ = front.send_multipart(reply, 0);
    }

    pub(super) fn handle(
        &mut self,
        req: CallerRequest,
        extra: Option<&[u8]>,
        back: &zmq::Socket,
    ) -> Value {
        match req {
            CallerRequest::Ping => ok(serde_json::to_value(self.ping()).unwrap_or_default()),
            CallerRequest::HasBinary { sha256 } => {
                let present = self.binary_path(&sha256).is_some_and(|p| p.is_file());
                ok(json!({ "present": present }))
            }
            CallerRequest::PutBinary {
                sha256,
                offset,
                total,
                upload,
            } => {
                let Some(bytes) = extra else {
                    return refuse(
                        "bad_request",
                        "put_binary needs a SHA-256 and the bytes".into(),
                    );
                };
                let key = crate::transport::blobs::UploadKey {
                    caller: self.caller.clone(),
                    sha256,
                    upload: upload.unwrap_or_default(),
                };
                let total = total.unwrap_or(bytes.len() as u64);
                match self.uploads.put(key, offset, total, bytes, Instant::now()) {
                    Ok(complete) => ok(json!({ "complete": complete })),
                    Err(e) => refuse(e.code(), e.to_string()),
                }
            }
            CallerRequest::Runs => match self.db.runs() {
                Ok(rows) => {
                    let rows: Vec<RunRow> = rows
                        .into_iter()
                        .filter(|(_, owner)| self.may_see(owner))
                        .map(|(r, _)| self.current_row(r))
                        .collect();
                    ok(json!({ "runs": rows }))
                }
                Err(e) => refuse("db", e.to_string()),
            },
            CallerRequest::Stop { run_id } => {
                let mine = self
                    .runs
                    .get(&run_id)
                    .is_some_and(|r| self.may_see(&r.owner));
                if mine && self.stop_run(&run_id, back) {
                    ok(json!({ "stopped": [run_id] }))
                } else {
                    refuse(
                        "unknown_run",
                        format!("no active run {run_id:?} (`loads runs` lists them)"),
                    )
                }
            }
            CallerRequest::Load {
                run_id,
                scenario,
                value,
            } => self.change_load(&run_id, scenario, value, back),
            CallerRequest::Purge => {
                let ids: Vec<String> = self
                    .runs
                    .iter()
                    .filter(|(_, r)| self.may_see(&r.owner))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &ids {
                    self.stop_run(id, back);
                }
                ok(json!({ "stopped": ids }))
            }
            CallerRequest::GetRun { run_id, after } => match self.db.get_run(&run_id, after) {
                Ok(Some((mut run, next, owner))) if self.may_see(&owner) => {
                    run.row = self.current_row(run.row);
                    ok(json!({ "run": run, "next": next }))
                }
                // Another caller's run is as unknown as a run that does not exist.
                Ok(_) => refuse(
                    "unknown_run",
                    format!("no run {run_id:?} (`loads runs` lists them)"),
                ),
                Err(e) => refuse("db", e.to_string()),
            },
            CallerRequest::Run(req) => self.start_run(*req, back),
            CallerRequest::StopAgent { agent_id } => self.stop_agent(&agent_id, back),
        }
    }

    /// A stored row as it is now: an active run's live figures, or an ended run's row that the
    /// database did not take yet.
    pub(super) fn current_row(&self, stored: RunRow) -> RunRow {
        if let Some(row) = self.unsaved_rows.get(&stored.run_id) {
            return row.clone();
        }
        match self.runs.get(&stored.run_id) {
            Some(active) => {
                let mut r = active.row.clone();
                r.hits = active.stats.totals().hits;
                r.duration = active.going.then(|| active.started.elapsed().as_secs_f64());
                r
            }
            None => stored,
        }
    }

    pub(super) fn start_run(
        &mut self,
        req: crate::transport::RunRequest,
        back: &zmq::Socket,
    ) -> Value {
        // Notifiers make the broker connect where the run says (a webhook, an SMTP server): on
        // a secured broker only an admin may ask for them.
        if self.opts.keys.is_some() && !self.caller_admin && !req.args.notify.notifiers.is_empty() {
            return refuse(
                "not_allowed",
                "end-of-run notifiers (--notify) make the broker connect to the given address: on a broker with CURVE keys they need an admin's key (--admin-keys)".into(),
            );
        }
        let crate::transport::RunRequest {
            mut args,
            agents: wanted,
            binary_sha256,
            platform,
            meta,
            files,
        } = req;
        if let Some(f) = files.iter().find(|f| {
            !crate::transport::safe_relative_path(&f.path)
                || !self.binary_path(&f.sha256).is_some_and(|p| p.is_file())
        }) {
            return refuse(
                "bad_file",
                format!(
                    "included file {:?} is not a safe relative path or was not sent",
                    f.path
                ),
            );
        }
        if !self
            .binary_path(&binary_sha256)
            .is_some_and(|p| p.is_file())
        {
            return refuse(
                "unknown_binary",
                "the broker does not have this test binary; send it first".into(),
            );
        }
        let idle: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.busy.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if wanted == 0 || (idle.len() as u64) < wanted {
            return refuse(
                "not_enough_agents",
                format!("{wanted} agents requested, {} available", idle.len()),
            );
        }
        // The broker names runs: an id from the network is kept only when it is a plain,
        // unused name (it becomes a topic and a directory name).
        let plain = |id: &str| {
            (1..=64).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && id != HEARTBEAT_TOPIC
        };
        // With CURVE, run ids are the broker's and unguessable: a run id is what lets one
        // follow a run's publications, and each caller learns only its own.
        if self.opts.keys.is_some() {
            match crate::transport::random_hex(8) {
                Ok(r) => args.run_id = format!("{}-{r}", crate::config::new_run_id()),
                Err(e) => return refuse("random", e.to_string()),
            }
        } else if !plain(&args.run_id)
            || self.runs.contains_key(&args.run_id)
            || self.db.get_run_row(&args.run_id).ok().flatten().is_some()
        {
            args.run_id = crate::config::new_run_id();
        }
        let run_id = args.run_id.clone();
        let chosen: Vec<String> = idle.into_iter().take(wanted as usize).collect();
        let row = RunRow {
            run_id: run_id.clone(),
            test: args.plan.test(),
            started: chrono::Utc::now().to_rfc3339(),
            duration: None,
            hits: 0,
            status: "running".into(),
            agents: wanted,
            lost_agents: Vec::new(),
            unstored: 0,
            problems: Vec::new(),
        };
        let meta = RunMeta {
            run_id: run_id.clone(),
            ..meta
        };
        let owner = if self.opts.keys.is_some() {
            self.caller.clone()
        } else {
            String::new()
        };
        let mut tokens = BTreeMap::new();
        for id in &chosen {
            match crate::transport::random_hex(32) {
                Ok(t) => {
                    tokens.insert(id.clone(), t);
                }
                Err(e) => return refuse("random", e.to_string()),
            }
        }
        if let Err(e) = self.db.insert_run(&row, &meta, &owner) {
            return refuse("db", e.to_string());
        }
        let n = chosen.len() as u64;
        for (i, id) in chosen.iter().enumerate() {
            // Each agent's share of a stages or rate plan (cycles run whole on every agent).
            let mut args = args.clone();
            args.plan.share = Some((i as u64, n));
            // The broker notifies, not the workers: their options (an SMTP password, a chat's
            // webhook URL, which is its secret) stay here.
            args.notify = crate::config::NotifyArgs::default();
            let job = ToAgent::Run(Box::new(Job {
                run_id: run_id.clone(),
                agent_id: id.clone(),
                args,
                binary_sha256: binary_sha256.clone(),
                platform: platform.clone(),
                receiver: self.bound["receiver"].clone(),
                files: files.clone(),
                backend: String::new(),
                token: tokens.get(id).cloned().unwrap_or_default(),
                curve: None,
            }));
            if let Ok(frame) = to_frame(&job) {
                let _ = back.send_multipart([id.as_bytes(), &frame], 0);
            }
            if let Some(a) = self.agents.get_mut(id) {
                a.busy = Some(run_id.clone());
            }
        }
        for (agent, token) in &tokens {
            self.tokens
                .insert(token.clone(), (run_id.clone(), agent.clone()));
        }
        self.runs.insert(
            run_id.clone(),
            ActiveRun {
                row,
                args: args.clone(),
                owner,
                agents: chosen.clone(),
                tokens,
                submitted: Instant::now(),
                last_waiting: Instant::now(),
                ending_since: None,
                stopped_at: None,
                dirty: false,
                done: HashMap::new(),
                exited: BTreeMap::new(),
                errors: crate::db::RunProblems::default(),
                started: Instant::now(),
                stats: Stats::default(),
                seq: 0,
                stopped: false,
                stopped_agents: BTreeMap::new(),
                unstored: 0,
                ready: HashSet::new(),
                going: false,
                outbox: Vec::new(),
                leases: BTreeMap::new(),
            },
        );
        ok(json!({ "run_id": run_id, "agents": chosen }))
    }
}
