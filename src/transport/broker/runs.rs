//! The life of a run on the broker: the go once its workers are ready (or the readiness deadline
//! passed), the loss of silent agents, stops, and the end (stored, notified, published) once
//! every agent's worker is done or lost.

use super::*;

impl Broker {
    pub(super) fn stop_run(&mut self, run_id: &str, back: &zmq::Socket) -> bool {
        let Some(run) = self.runs.get_mut(run_id) else {
            return false;
        };
        run.stopped = true;
        run.stopped_at.get_or_insert_with(Instant::now);
        if !run.going {
            // Not started: nothing to wait for; it ends now, whatever its workers do.
            let now = Instant::now();
            for a in &run.agents {
                run.done.entry(a.clone()).or_insert(now);
                run.exited.entry(a.clone()).or_insert((now, true));
            }
        }
        if let Ok(f) = to_frame(&ToAgent::Stop {
            run_id: run_id.to_owned(),
        }) {
            for a in &run.agents {
                let _ = back.send_multipart([a.as_bytes(), &f], 0);
            }
        }
        true
    }

    /// Stops the worker of agent `agent_id` (`loads stop --agent`), when it works for a run the
    /// caller may see: the run goes on with its other agents, and its end names this worker as
    /// stopped by the user (a problem of the run: its totals miss what the worker would have
    /// done). Stopping the last worker still going stops the run, as `loads stop RUN` would.
    pub(super) fn stop_agent(&mut self, agent_id: &str, back: &zmq::Socket) -> Value {
        let Some(agent) = self.agents.get(agent_id) else {
            return refuse(
                "unknown_agent",
                format!("no agent {agent_id:?} on this broker (`loads agents` lists them)"),
            );
        };
        // Another caller's run is as unknown as none.
        let run_id = agent.busy.clone().filter(|r| {
            self.runs.get(r).is_some_and(|run| {
                self.may_see(&run.owner) && run.agents.iter().any(|a| a == agent_id)
            })
        });
        let Some(run_id) = run_id else {
            return refuse(
                "agent_not_busy",
                format!(
                    "agent {agent_id} works for no active run of yours: nothing to stop (`loads agents` shows what each agent does)"
                ),
            );
        };
        let Some(run) = self.runs.get_mut(&run_id) else {
            return refuse("unknown_run", format!("no active run {run_id:?}"));
        };
        let now = Instant::now();
        if run.stopped || run.stopped_agents.contains_key(agent_id) {
            return ok(json!({ "agent": agent_id, "run_id": run_id, "run_goes_on": !run.stopped }));
        }
        run.stopped_agents.insert(agent_id.to_owned(), now);
        let others_go_on = run.agents.iter().any(|a| {
            !run.stopped_agents.contains_key(a)
                && !run.row.lost_agents.contains(a)
                && !run.exited.contains_key(a)
        });
        if !others_go_on {
            // The last worker still going: the whole run is stopped, as `loads stop RUN` does.
            self.stop_run(&run_id, back);
            return ok(json!({ "agent": agent_id, "run_id": run_id, "run_goes_on": false }));
        }
        run.errors.push(&format!(
            "agent {agent_id}: its worker was stopped by the user (`loads stop --agent`); the run went on without it, so its totals miss what that worker would have done"
        ));
        if !run.going {
            // Not started: this worker is not waited for.
            run.done.entry(agent_id.to_owned()).or_insert(now);
            run.exited.entry(agent_id.to_owned()).or_insert((now, true));
            Self::go_when_ready(&run_id, run, back);
        }
        if let Ok(f) = to_frame(&ToAgent::Stop {
            run_id: run_id.clone(),
        }) {
            let _ = back.send_multipart([agent_id.as_bytes(), &f], 0);
        }
        ok(json!({ "agent": agent_id, "run_id": run_id, "run_goes_on": true }))
    }

    /// Gives the go to every worker of `run` once all of them are ready (or done/lost).
    pub(super) fn go_when_ready(run_id: &str, run: &mut ActiveRun, back: &zmq::Socket) {
        if run.going
            || !run.agents.iter().all(|a| {
                run.ready.contains(a) || run.done.contains_key(a) || run.exited.contains_key(a)
            })
        {
            return;
        }
        run.going = true;
        // The run starts now, not when it was submitted: fetching the binary and starting the
        // workers is not part of its duration.
        run.started = Instant::now();
        run.row.started = chrono::Utc::now().to_rfc3339();
        if let Ok(f) = to_frame(&ToAgent::Go {
            run_id: run_id.to_owned(),
        }) {
            for a in run.agents.iter().filter(|a| run.ready.contains(*a)) {
                let _ = back.send_multipart([a.as_bytes(), &f], 0);
            }
        }
    }

    /// Drops silent agents, starts the runs whose workers are ready (or gives up on the workers
    /// that are not ready in time), and ends the runs whose agents are all done or lost.
    pub(super) fn check_agents(&mut self, publisher: &zmq::Socket, back: &zmq::Socket) {
        let timeout = self.opts.agent_timeout;
        let silent: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.last_seen.elapsed() > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in silent {
            eprintln!(
                "broker: agent {id} dropped: no heartbeat for {}s",
                timeout.as_secs()
            );
            if let Some(a) = self.agents.remove(&id)
                && let Some(run) = a.busy.and_then(|r| self.runs.get_mut(&r))
                && !run.done.contains_key(&id)
            {
                run.row.lost_agents.push(id.clone());
                // Its caller (and dashboard) say so now, not only at the end.
                if let Ok(p) = to_frame(&Publication::AgentLost { agent: id.clone() }) {
                    let _ =
                        publisher.send_multipart([run.row.run_id.as_bytes(), &p], zmq::DONTWAIT);
                }
                run.done.insert(id, Instant::now());
            }
        }
        let ready_timeout = self.opts.ready_timeout;
        for (run_id, run) in self.runs.iter_mut() {
            if !run.going && run.submitted.elapsed() > ready_timeout {
                // Workers that are not ready in time: the run goes on without them (it fails
                // when none is ready), and their agents are told to stop.
                let late: Vec<String> = run
                    .agents
                    .iter()
                    .filter(|a| {
                        !run.ready.contains(*a)
                            && !run.done.contains_key(*a)
                            && !run.exited.contains_key(*a)
                    })
                    .cloned()
                    .collect();
                let none_ready = run.ready.is_empty();
                for a in late {
                    run.errors.push(&format!(
                        "agent {a}: its worker was not ready within {}s (the broker's --ready-timeout); {}",
                        ready_timeout.as_secs(),
                        if none_ready {
                            "no worker was ready, so the run did not start"
                        } else {
                            "the run went on without it"
                        }
                    ));
                    if let Ok(f) = to_frame(&ToAgent::Stop {
                        run_id: run_id.clone(),
                    }) {
                        let _ = back.send_multipart([a.as_bytes(), &f], zmq::DONTWAIT);
                    }
                    let now = Instant::now();
                    run.done.insert(a.clone(), now);
                    run.exited.insert(a, (now, false));
                }
            }
            // A worker that failed to start, or an agent lost, must not hold the others back.
            Self::go_when_ready(run_id, run, back);
            if !run.going && run.last_waiting.elapsed() >= Duration::from_secs(1) {
                run.last_waiting = Instant::now();
                let waiting = Publication::Waiting {
                    ready: run.ready.len() as u64,
                    agents: run.agents.len() as u64,
                    waiting_for: run
                        .agents
                        .iter()
                        .filter(|a| !run.ready.contains(*a) && !run.done.contains_key(*a))
                        .cloned()
                        .collect(),
                    deadline: ready_timeout
                        .saturating_sub(run.submitted.elapsed())
                        .as_secs_f64(),
                };
                if let Ok(p) = to_frame(&waiting) {
                    let _ = publisher.send_multipart([run_id.as_bytes(), &p], zmq::DONTWAIT);
                }
            }
        }
        let ended: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                // A stopped run does not wait for ever for workers that do not exit.
                r.stopped_at
                    .is_some_and(|t| t.elapsed() > STOPPED_RUN_GRACE)
                    || r.agents.iter().all(|a| {
                        if r.row.lost_agents.contains(a)
                            || r.stopped_agents
                                .get(a)
                                .is_some_and(|t| t.elapsed() > STOPPED_RUN_GRACE)
                        {
                            return true;
                        }
                        match (r.done.get(a), r.exited.get(a)) {
                            // All its events, and how its worker ended (a worker reports its
                            // problems when it exits, after its last event).
                            (Some(_), Some(_)) => true,
                            // A worker that lingers after its last event is not waited for long.
                            (Some(t), None) => t.elapsed() > DONE_WITHOUT_EXIT,
                            (None, Some((t, clean))) => {
                                t.elapsed() > if *clean { CLEAN_EXIT_GRACE } else { EXIT_GRACE }
                            }
                            (None, None) => false,
                        }
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            // When it could first end: its duration ends there, whatever it waits for after.
            if let Some(run) = self.runs.get_mut(&id) {
                run.ending_since.get_or_insert_with(Instant::now);
            }
            // Its events are stored before it ends; while the database fails, an ended run waits
            // a while for it, then counts its events that are still not stored as lost.
            let has_pending = self.pending.iter().any(|(r, _)| *r == id);
            if has_pending {
                self.flush(false);
            }
            if has_pending && self.store_failed.is_some() {
                let Some(run) = self.runs.get_mut(&id) else {
                    continue;
                };
                let since = *run.ending_since.get_or_insert_with(Instant::now);
                if since.elapsed() < END_STORE_GRACE {
                    continue;
                }
                let before = self.pending.len();
                self.pending.retain(|(r, _)| *r != id);
                run.unstored += (before - self.pending.len()) as u64;
                self.pending_bytes = self.pending.iter().map(|(_, t)| t.len()).sum();
            }
            if let Some(mut run) = self.runs.remove(&id) {
                for t in run.tokens.values() {
                    self.tokens.remove(t);
                }
                // Its agents are free again (a worker still exiting does not hold its agent).
                for a in &run.agents {
                    if let Some(agent) = self.agents.get_mut(a)
                        && agent.busy.as_deref() == Some(id.as_str())
                    {
                        agent.busy = None;
                    }
                }
                // The last events of a worker may still be in flight when its agent reports the
                // exit; they are refused (the run is over), and the caller has its end.
                run.row.hits = run.stats.totals().hits;
                let end_at = run.ending_since.unwrap_or_else(Instant::now);
                run.row.duration = Some(if run.going {
                    end_at.saturating_duration_since(run.started).as_secs_f64()
                } else {
                    0.0
                });
                run.row.unstored = run.unstored;
                if run
                    .stopped_at
                    .is_some_and(|t| t.elapsed() > STOPPED_RUN_GRACE)
                {
                    // Workers that did not exit when stopped.
                    for a in &run.agents {
                        if !run.exited.contains_key(a) && !run.row.lost_agents.contains(a) {
                            run.errors.push(&format!(
                                "agent {a}: its worker did not exit within {}s of the stop",
                                STOPPED_RUN_GRACE.as_secs()
                            ));
                        }
                    }
                }
                run.row.status = if run.stopped {
                    "stopped"
                } else if run.errors.is_empty() {
                    "finished"
                } else {
                    "failed"
                }
                .into();
                // Its problems are stored with it (`loads report`, the broker's page), bounded,
                // and its caller and notifiers are told the same.
                run.row.problems = run.errors.kept();
                // Stored with the run's last events when the database takes them; until then
                // the broker shows it from memory.
                self.unsaved_rows.insert(id.clone(), run.row.clone());
                self.flush(true);
                if !run.args.notify.notifiers.is_empty() {
                    let summary = crate::notify::RunSummary::new(
                        &id,
                        &run.row.test,
                        &run.row.status,
                        run.row.duration.unwrap_or(0.0),
                        &run.stats,
                        run.row.agents,
                        run.row.lost_agents.clone(),
                        run.row.problems.clone(),
                    );
                    let args = run.args.clone();
                    // Off the broker's loop: a slow endpoint must not hold it up.
                    let _ = std::thread::Builder::new()
                        .name("loads-notifiers".into())
                        .spawn(move || {
                            for e in crate::notify::notify_all(&args.notify, &summary) {
                                eprintln!("broker: run {}: observer failed: {e}", summary.run_id);
                            }
                        });
                }
                let end = Publication::End {
                    status: run.row.status.clone(),
                    lost_agents: run.row.lost_agents.clone(),
                    errors: run.row.problems.clone(),
                    events: run.seq,
                    unstored: run.unstored,
                    duration: run.row.duration.filter(|_| run.going),
                };
                if let Ok(p) = to_frame(&end) {
                    let _ = publisher.send_multipart([id.as_bytes(), &p], 0);
                }
            }
        }
    }
}
