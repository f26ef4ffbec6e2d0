//! Workers' events on the receiver: checked against their worker's token before anything is
//! decoded, applied to the run's statistics (its totals, without a timeline), queued for
//! storing and republished to callers, one message per run and loop turn.

use super::*;
use crate::result::stats::Window;

impl Broker {
    pub(super) fn on_event(&mut self, frames: &[Vec<u8>], publisher: &zmq::Socket) {
        // A worker's message: its token, then its event. The token says which run and which
        // agent it speaks for; nothing else in the message is trusted, and nothing is decoded
        // before the token is known.
        let [token, frame] = frames else {
            self.rejected += 1;
            return;
        };
        let Some((run_id, agent_id)) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| self.tokens.get(t))
            .cloned()
        else {
            self.rejected += 1;
            return;
        };
        let Ok(env) = from_frame::<Envelope>(frame) else {
            self.rejected += 1;
            return;
        };
        let Some(run) = self
            .runs
            .get_mut(&run_id)
            .filter(|_| env.run_id == run_id && env.agent_id == agent_id)
        else {
            self.rejected += 1;
            return;
        };
        let frame = frame.as_slice();
        match &env.event {
            Event::StopTestRun => {
                run.done.insert(env.agent_id.clone(), Instant::now());
            }
            Event::StartTestRun => {}
            other => {
                // The broker uses a run's totals only: it keeps no timeline, so the seconds a
                // worker dates its figures with cost it nothing, however many (the caller files
                // them in its own timeline, within the run's window).
                let now = crate::result::unix_now();
                other.apply_within(&mut run.stats, now, Window::NOTHING);
            }
        }
        run.seq += 1;
        let seq = run.seq;
        // The frame was validated above (it parsed as an envelope): it is stored and
        // republished as it came, inside a `Publication::Events` of this loop turn, without
        // serialising it again. One message per turn instead of one per event spares the
        // publisher's queue and the kernel.
        if run.outbox.is_empty() {
            run.outbox
                .extend_from_slice(b"{\"type\":\"events\",\"first\":");
            run.outbox.extend_from_slice(seq.to_string().as_bytes());
            run.outbox.extend_from_slice(b",\"envelopes\":[");
        } else {
            run.outbox.push(b',');
        }
        run.outbox.extend_from_slice(frame);
        if run.outbox.len() >= PUBLICATION_BYTES {
            Self::publish_outbox(&env.run_id, run, publisher);
        }
        run.dirty = true;
        if self.pending_bytes.saturating_add(frame.len()) > MAX_PENDING_BYTES {
            // The database has not taken events for a while: this one is published and
            // counted, but not kept for storing.
            run.unstored += 1;
            return;
        }
        // It parsed as JSON, so it is UTF-8: no second validation pass.
        let text = std::str::from_utf8(frame)
            .map(str::to_owned)
            .unwrap_or_default();
        self.pending_bytes += text.len();
        self.pending.push((env.run_id, text));
    }

    /// Publishes the events of `run` received since its last publication.
    pub(super) fn publish_outbox(run_id: &str, run: &mut ActiveRun, publisher: &zmq::Socket) {
        if run.outbox.is_empty() {
            return;
        }
        run.outbox.extend_from_slice(b"]}");
        let _ = publisher.send_multipart([run_id.as_bytes(), &run.outbox], 0);
        run.outbox.clear();
    }

    /// Publishes every run's pending events (before anything else is published about them).
    pub(super) fn publish_all(&mut self, publisher: &zmq::Socket) {
        for (id, run) in self.runs.iter_mut() {
            Self::publish_outbox(id, run, publisher);
        }
    }
}
