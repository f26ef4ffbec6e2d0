//! Instrumented clients: the HTTP [`Session`] and the [`WebSocket`] client. Every request and
//! WebSocket message a test makes through them is recorded into the virtual user's shard of the
//! run's `Recorder`; the data leaves as the statistics of the run.
//!
//! What users share and what each owns: every virtual user owns one `client::Client` (its own
//! keep-alive connections and cookie jar); the TLS configuration (root certificates, crypto
//! provider), the DNS cache and the runtime are shared by all users.
//!
//! The HTTP client is three files: `codec` (bytes in, parsed values out: no sockets, no async),
//! `connection` (one TCP or TLS stream and its buffers) and `client` (the pool of connections,
//! redirects, cookies, timeouts). `deadline` is the kept timer that bounds each HTTP request
//! and each WebSocket receive.

pub(crate) mod client;
mod codec;
mod connection;
mod deadline;
mod dns;
mod session;
mod tls;
mod ws;

#[doc(hidden)]
pub use codec::decode_responses;
pub(crate) use session::new_client;
pub use session::{HttpError, Request, Response, Session};
pub use ws::{Message, WebSocket, WsError};

/// HTTP types used by the session API.
pub use http::{Method, StatusCode, header};
