//! The reference client of `bench/run.sh wsecho`: C WebSocket connections to an echo server,
//! each sending one small text frame and awaiting its echo, again and again, on one thread
//! (tokio's current-thread runtime) with plain tokio-tungstenite.
//!
//! Each message is the work of a message in loads' `example::websocket_echo_loop`: one text
//! frame of the same 23 bytes out, one frame in, compared with what was sent. Like that test's
//! hits, each socket carries `--per-socket` messages (100) and is then closed (close frame sent,
//! as loads' `WebSocket::close`) and opened again, so the handshakes are the same too;
//! `--per-socket 0` keeps one socket per connection for the whole run. The sockets' buffers are
//! configured as loads configures its own (4 KiB read buffer, no write buffering).
//!
//! ```text
//! ws-echo URL [-c CONNECTIONS] [-d SECONDS | -m MESSAGES] [--per-socket N]
//! ```
//!
//! `-d` stops each connection at its first socket boundary after SECONDS (as loads ends a user
//! at its first hit after the duration); `-m` is a count per connection. It prints
//! `Messages: N (R msg/s) in S s, sockets: K` and exits 1 on any error.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

/// The text sent (the same as loads' `example::websocket_echo_loop`).
const TEXT: &str = "loads websocket echo 23";

/// What to do, from the command line.
struct Options {
    /// The echo endpoint, `ws://HOST:PORT/ws`.
    url: String,
    /// Connections run side by side.
    connections: usize,
    /// Stop after this long (at a socket boundary).
    duration: Option<Duration>,
    /// Or after this many messages per connection.
    messages: Option<u64>,
    /// Messages per socket before it is closed and opened again; 0: one socket for the run.
    per_socket: u64,
}

const USAGE: &str =
    "usage: ws-echo URL [-c CONNECTIONS] [-d SECONDS | -m MESSAGES] [--per-socket N]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut url = None;
    let mut o = Options {
        url: String::new(),
        connections: 1,
        duration: None,
        messages: None,
        per_socket: 100,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-c" | "--connections" => {
                o.connections = value(&a)?.parse().map_err(|e| format!("-c: {e}"))?;
            }
            "-d" | "--duration" => {
                let s: f64 = value(&a)?.parse().map_err(|e| format!("-d: {e}"))?;
                o.duration = Some(Duration::try_from_secs_f64(s).map_err(|e| format!("-d: {e}"))?);
            }
            "-m" | "--messages" => {
                o.messages = Some(value(&a)?.parse().map_err(|e| format!("-m: {e}"))?);
            }
            "--per-socket" => {
                o.per_socket = value(&a)?
                    .parse()
                    .map_err(|e| format!("--per-socket: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ if url.is_none() && !a.starts_with('-') => url = Some(a),
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    o.url = url.ok_or(USAGE)?;
    if o.connections == 0 {
        return Err("-c must be at least 1".into());
    }
    if o.duration.is_none() == o.messages.is_none() {
        return Err(format!("give one of -d and -m\n{USAGE}"));
    }
    Ok(o)
}

/// The figures of one connection.
#[derive(Default)]
struct Count {
    messages: u64,
    sockets: u64,
}

/// One connection's loop: sockets one after another until the deadline or the message count.
async fn connection(
    url: &str,
    deadline: Option<Instant>,
    messages: Option<u64>,
    per_socket: u64,
) -> Result<Count, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut count = Count::default();
    loop {
        let left = messages.map(|m| m - count.messages);
        if left == Some(0) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(count);
        }
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| format!("connect to {url}: {e}"))?;
        count.sockets += 1;
        let mut on_this = 0u64;
        loop {
            if (per_socket > 0 && on_this == per_socket) || left == Some(on_this) {
                break;
            }
            // Unbounded socket with a duration: check the deadline every 100 messages.
            if per_socket == 0
                && on_this.is_multiple_of(100)
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                break;
            }
            ws.send(Message::text(TEXT))
                .await
                .map_err(|e| format!("send: {e}"))?;
            let echo = loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => break t,
                    Some(Ok(Message::Binary(b))) => {
                        return Err(format!("a binary echo of {} bytes", b.len()));
                    }
                    Some(Ok(Message::Close(f))) => {
                        return Err(format!("closed by the server: {f:?}"));
                    }
                    // Pings are answered by tungstenite on the next read or write.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("receive: {e}")),
                    None => return Err("the server closed the connection".into()),
                }
            };
            if echo.as_str() != TEXT {
                return Err(format!("wrong echo {:?}", echo.as_str()));
            }
            on_this += 1;
            count.messages += 1;
        }
        match ws.close(None).await {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(e) => return Err(format!("close: {e}")),
        }
    }
}

fn main() -> ExitCode {
    let o = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let deadline = o.duration.map(|d| started + d);
    let result = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..o.connections {
            let url = o.url.clone();
            let (messages, per_socket) = (o.messages, o.per_socket);
            set.spawn(async move { connection(&url, deadline, messages, per_socket).await });
        }
        let mut total = Count::default();
        let mut error = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(c)) => {
                    total.messages += c.messages;
                    total.sockets += c.sockets;
                }
                Ok(Err(e)) => error = Some(e),
                Err(e) => error = Some(format!("task: {e}")),
            }
        }
        (total, error)
    });
    let secs = started.elapsed().as_secs_f64();
    let (total, error) = result;
    println!(
        "Messages: {} ({:.1} msg/s) in {:.2} s, sockets: {}",
        total.messages,
        total.messages as f64 / secs,
        secs,
        total.sockets
    );
    match error {
        Some(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
