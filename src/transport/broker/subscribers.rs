//! Subscriptions to the broker's publisher and heartbeat (XPUBs in manual mode): the broker
//! applies a subscription only to a run the subscriber may follow.

use super::*;

impl Broker {
    /// Applies a subscription (`\x01TOPIC`) or an unsubscription (`\x00TOPIC`) that `socket`
    /// (an XPUB in manual mode) just received from the connection whose key is `user`, when its
    /// topic is one that subscriber may follow: on the publisher, the id of an active run that
    /// is its own (with CURVE; an admin's key follows any); on the heartbeat, the heartbeat
    /// topic. Anything
    /// else (an empty prefix, which would match every run; a made-up topic) is dropped.
    pub(super) fn on_subscription(
        &mut self,
        socket: &zmq::Socket,
        sub: &[u8],
        user: &str,
        heartbeats: bool,
    ) {
        let Some((&flag, topic)) = sub.split_first() else {
            return;
        };
        let allowed = if heartbeats {
            topic == HEARTBEAT_TOPIC.as_bytes()
        } else {
            // With CURVE, only the run's owner (or an admin) may follow it.
            let may_follow = |owner: &str| match &self.opts.keys {
                Some(k) => owner == user || k.roles.is_admin(user),
                None => true,
            };
            std::str::from_utf8(topic)
                .ok()
                .and_then(|t| self.runs.get(t))
                .is_some_and(|r| may_follow(&r.owner))
        };
        if !allowed {
            // Not counted as rejected: a caller's one subscriber socket sends its heartbeat
            // subscription to the publisher too.
            return;
        }
        let _ = match flag {
            1 => socket.set_subscribe(topic),
            0 => socket.set_unsubscribe(topic),
            _ => Ok(()),
        };
    }
}
