//! The caller's side of the broker's front socket: a REQ socket that sends one
//! [`CallerRequest`] and waits, bounded in time, for its JSON reply.

use serde_json::Value;
use std::time::Duration;

use super::{CallerRequest, TransportError, to_frame, z};

/// A connection to a broker's front socket.
pub struct BrokerClient {
    socket: zmq::Socket,
    ctx: zmq::Context,
    endpoint: String,
    timeout: Duration,
}

/// A refused request: the broker's error code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Machine-readable code (`not_enough_agents`, `unknown_run`...).
    pub code: String,
    /// What the broker said.
    pub message: String,
}

impl BrokerClient {
    /// Connects to the front socket at `endpoint`; each request waits at most `timeout`.
    pub fn connect(endpoint: &str, timeout: Duration) -> Result<BrokerClient, TransportError> {
        let ctx = zmq::Context::new();
        let socket = z("caller socket", ctx.socket(zmq::REQ))?;
        z("linger", socket.set_linger(0))?;
        // A request that timed out does not wedge the socket: the next one may be sent, and a
        // late reply to the old one is told apart and dropped.
        z("relaxed requests", socket.set_req_relaxed(true))?;
        z("correlated requests", socket.set_req_correlate(true))?;
        super::security::secure_client(&socket)?;
        z(
            &format!("connecting to {endpoint}"),
            socket.connect(endpoint),
        )?;
        Ok(BrokerClient {
            socket,
            ctx,
            endpoint: endpoint.to_owned(),
            timeout,
        })
    }

    /// The ZeroMQ context, for the caller's other sockets.
    pub fn context(&self) -> &zmq::Context {
        &self.ctx
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `req` (and `extra` as a second frame) and returns the reply, or the broker's
    /// refusal as `Ok(Err(..))`.
    pub fn request(
        &self,
        req: &CallerRequest,
        extra: Option<&[u8]>,
    ) -> Result<Result<Value, Refusal>, TransportError> {
        self.request_within(req, extra, self.timeout)
    }

    /// Like [`request`](Self::request), waiting at most `timeout` for the answer.
    pub fn request_within(
        &self,
        req: &CallerRequest,
        extra: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Result<Value, Refusal>, TransportError> {
        let frame = to_frame(req)?;
        match extra {
            Some(bytes) => z(
                "sending",
                self.socket.send_multipart([frame.as_slice(), bytes], 0),
            )?,
            None => z("sending", self.socket.send(frame, 0))?,
        }
        let mut items = [self.socket.as_poll_item(zmq::POLLIN)];
        let ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        super::poll(&mut items, ms)?;
        if !items[0].is_readable() {
            return Err(TransportError::NoBroker(self.endpoint.clone()));
        }
        let reply = z("receiving", self.socket.recv_bytes(0))?;
        let v: Value =
            serde_json::from_slice(&reply).map_err(|e| TransportError::Message(e.to_string()))?;
        if v["ok"].as_bool() == Some(true) {
            Ok(Ok(v))
        } else {
            Ok(Err(Refusal {
                code: v["code"].as_str().unwrap_or("error").to_owned(),
                message: v["error"]
                    .as_str()
                    .unwrap_or("the broker refused the request")
                    .to_owned(),
            }))
        }
    }

    /// Like [`request`](Self::request), with a refusal as an error.
    pub fn call(&self, req: &CallerRequest, extra: Option<&[u8]>) -> Result<Value, TransportError> {
        self.request(req, extra)?
            .map_err(|r| TransportError::Refused(r.message))
    }
}
