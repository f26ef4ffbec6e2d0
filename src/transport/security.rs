//! Cluster security with ZeroMQ's CURVE (encryption and authentication of every connection).
//!
//! - `loads keygen NAME` writes a key pair: `NAME.key` (public and secret, mode 0600) and
//!   `NAME.pub` (the public key, to give to others).
//! - The broker takes its key pair ([`ServerKeys`]) and the public keys it accepts (a directory
//!   of `*.pub` files, or a file with one key per line). With keys, every broker socket is a
//!   CURVE server, and a ZAP handler ([`start_zap`]) admits only the listed public keys: an
//!   agent's, a caller's or a worker's connection with another key never completes, so its
//!   messages never reach a run or the database.
//! - Agents, callers and workers take their own key pair and the broker's public key
//!   ([`ClientKeys`]); workers get their agent's keys in their job file.
//! - Without keys the broker binds loopback endpoints only, unless `--insecure`
//!   ([`check_binds`]).

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{TransportError, z};

/// A problem with keys: a file that cannot be read, a key that is not one.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something is not a key or a key file.
    #[error("{0}")]
    Invalid(String),
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> KeyError {
    move |source| KeyError::Io { what, source }
}

/// A CURVE key pair, Z85-encoded (40 characters each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// The public key.
    pub public: String,
    /// The secret key.
    pub secret: String,
}

/// Decodes a Z85 CURVE key (40 characters, 32 bytes).
pub fn decode_key(z85: &str) -> Result<[u8; 32], KeyError> {
    let bad = || {
        KeyError::Invalid(format!(
            "{:?} is not a CURVE key (40 Z85 characters, as written by `loads keygen`)",
            z85.chars().take(48).collect::<String>()
        ))
    };
    if z85.len() != 40 {
        return Err(bad());
    }
    let bytes = zmq::z85_decode(z85).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Result<KeyPair, KeyError> {
        let pair = zmq::CurveKeyPair::new()
            .map_err(|e| KeyError::Invalid(format!("cannot make a key pair: {e}")))?;
        let enc = |k: &[u8]| {
            zmq::z85_encode(k).map_err(|e| KeyError::Invalid(format!("cannot encode a key: {e}")))
        };
        Ok(KeyPair {
            public: enc(&pair.public_key)?,
            secret: enc(&pair.secret_key)?,
        })
    }

    /// Writes `PREFIX.key` (both keys, readable by the owner only) and `PREFIX.pub`; refuses to
    /// overwrite existing files.
    pub fn write(&self, prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // NAME.key and NAME.pub, whatever dots NAME has (`host1.example.com.key`).
        let with = |ext: &str| {
            let mut s = prefix.as_os_str().to_owned();
            s.push(format!(".{ext}"));
            PathBuf::from(s)
        };
        let (key, public) = (with("key"), with("pub"));
        for p in [&key, &public] {
            if p.exists() {
                return Err(KeyError::Invalid(format!(
                    "{} exists: choose another name (keys are never overwritten)",
                    p.display()
                )));
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .map_err(io(format!("cannot create {}", key.display())))?;
        writeln!(
            f,
            "# loads CURVE key pair: keep this file secret\npublic = \"{}\"\nsecret = \"{}\"",
            self.public, self.secret
        )
        .map_err(io(format!("cannot write {}", key.display())))?;
        std::fs::write(&public, format!("{}\n", self.public))
            .map_err(io(format!("cannot write {}", public.display())))?;
        Ok((key, public))
    }

    /// Reads a key pair written by [`KeyPair::write`].
    pub fn read(path: &Path) -> Result<KeyPair, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(io(format!("cannot read the key file {}", path.display())))?;
        let pair: KeyPair = toml::from_str(&text).map_err(|e| {
            KeyError::Invalid(format!(
                "{} is not a key pair written by `loads keygen`: {}",
                path.display(),
                e.to_string().trim()
            ))
        })?;
        decode_key(&pair.public)?;
        decode_key(&pair.secret)?;
        Ok(pair)
    }
}

/// A public key given as a `.pub` file or as the 40 Z85 characters themselves.
pub fn read_public_key(given: &str) -> Result<String, KeyError> {
    let text = if Path::new(given).is_file() {
        std::fs::read_to_string(given).map_err(io(format!("cannot read {given}")))?
    } else {
        given.to_owned()
    };
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default()
        .to_owned();
    decode_key(&key)?;
    Ok(key)
}

/// The public keys a broker accepts: every `*.pub` file of a directory, or the keys of a file
/// (one per line, `#` comments).
pub fn read_authorized(path: &Path) -> Result<HashSet<[u8; 32]>, KeyError> {
    let mut keys = HashSet::new();
    let mut add_file = |p: &Path| -> Result<(), KeyError> {
        let text =
            std::fs::read_to_string(p).map_err(io(format!("cannot read {}", p.display())))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            keys.insert(
                decode_key(line).map_err(|e| KeyError::Invalid(format!("{}: {e}", p.display())))?,
            );
        }
        Ok(())
    };
    if path.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(io(format!("cannot read {}", path.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pub") {
                add_file(&p)?;
            }
        }
    } else {
        add_file(path)?;
    }
    if keys.is_empty() {
        return Err(KeyError::Invalid(format!(
            "no public key in {}: put the agents' and callers' .pub files there (`loads keygen`)",
            path.display()
        )));
    }
    Ok(keys)
}

/// What an agent, a caller or a worker needs to talk to a broker with CURVE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKeys {
    /// Our key pair.
    pub pair: KeyPair,
    /// The broker's public key.
    pub server: String,
}

impl ClientKeys {
    /// Reads our key file and the broker's public key (a `.pub` file or the key itself).
    pub fn load(key_file: &Path, server_key: &str) -> Result<ClientKeys, KeyError> {
        Ok(ClientKeys {
            pair: KeyPair::read(key_file)?,
            server: read_public_key(server_key)?,
        })
    }

    /// Makes `socket` a CURVE client of the broker (before it connects).
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), TransportError> {
        let k = |s: &str| decode_key(s).map_err(|e| TransportError::Message(e.to_string()));
        z(
            "curve server key",
            socket.set_curve_serverkey(&k(&self.server)?),
        )?;
        z(
            "curve public key",
            socket.set_curve_publickey(&k(&self.pair.public)?),
        )?;
        z(
            "curve secret key",
            socket.set_curve_secretkey(&k(&self.pair.secret)?),
        )
    }
}

static CLIENT_KEYS: std::sync::OnceLock<Option<ClientKeys>> = std::sync::OnceLock::new();

/// Sets this process's keys as a client of brokers (a caller's, an agent's or a worker's), once,
/// before any socket is made; every client socket then uses them.
pub fn set_client_keys(keys: Option<ClientKeys>) {
    let _ = CLIENT_KEYS.set(keys);
}

/// This process's client keys, if any.
pub fn client_keys() -> Option<&'static ClientKeys> {
    CLIENT_KEYS.get().and_then(Option::as_ref)
}

/// Makes `socket` a CURVE client when this process has client keys.
pub fn secure_client(socket: &zmq::Socket) -> Result<(), TransportError> {
    apply_client(client_keys(), socket)
}

/// Applies `keys` to `socket` when there are keys.
pub fn apply_client(keys: Option<&ClientKeys>, socket: &zmq::Socket) -> Result<(), TransportError> {
    match keys {
        Some(k) => k.apply(socket),
        None => Ok(()),
    }
}

/// The broker's side: its key pair and the public keys it admits.
#[derive(Debug, Clone)]
pub struct ServerKeys {
    /// The broker's key pair.
    pub pair: KeyPair,
    /// The admitted public keys.
    pub authorized: HashSet<[u8; 32]>,
}

impl ServerKeys {
    /// Makes `socket` a CURVE server whose clients the ZAP handler checks (before it binds).
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), TransportError> {
        let secret =
            decode_key(&self.pair.secret).map_err(|e| TransportError::Message(e.to_string()))?;
        z("curve server", socket.set_curve_server(true))?;
        z("curve secret key", socket.set_curve_secretkey(&secret))?;
        z("zap domain", socket.set_zap_domain("loads"))
    }
}

/// The running ZAP handler of a broker: stopped and joined when dropped. Keep it alive longer
/// than the sockets it checks (declare it first).
pub struct ZapGuard {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ZapGuard {
    /// Starts the ZAP handler of `ctx` for `authorized` keys, counting refusals in `refused`.
    pub fn start(
        ctx: &zmq::Context,
        authorized: HashSet<[u8; 32]>,
        refused: Arc<AtomicU64>,
    ) -> Result<ZapGuard, TransportError> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = start_zap(ctx, authorized, refused, stop.clone())?;
        Ok(ZapGuard {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ZapGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts the ZAP handler of `ctx`: it admits CURVE clients whose public key is in
/// `authorized` and counts the others in `refused`, until `stop` is set.
pub fn start_zap(
    ctx: &zmq::Context,
    authorized: HashSet<[u8; 32]>,
    refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, TransportError> {
    let handler = z("zap socket", ctx.socket(zmq::REP))?;
    z("zap bind", handler.bind("inproc://zeromq.zap.01"))?;
    std::thread::Builder::new()
        .name("loads-zap".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut items = [handler.as_poll_item(zmq::POLLIN)];
                if zmq::poll(&mut items, 200).is_err() || !items[0].is_readable() {
                    continue;
                }
                let Ok(frames) = handler.recv_multipart(0) else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                // ZAP 1.0: version, request id, domain, address, identity, mechanism,
                // credentials...
                let version = frames.first().cloned().unwrap_or_default();
                let request_id = frames.get(1).cloned().unwrap_or_default();
                let mechanism = frames.get(5).map(Vec::as_slice).unwrap_or_default();
                let key = frames.get(6).map(Vec::as_slice).unwrap_or_default();
                let ok = version == b"1.0"
                    && mechanism == b"CURVE"
                    && <[u8; 32]>::try_from(key).is_ok_and(|k| authorized.contains(&k));
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                let (code, text): (&[u8], &[u8]) = if ok {
                    (b"200", b"OK")
                } else {
                    (b"400", b"key not authorised")
                };
                let user: &[u8] = if ok { b"loads" } else { b"" };
                if handler
                    .send_multipart([version.as_slice(), &request_id, code, text, user, b""], 0)
                    .is_err()
                {
                    // Not answered: that connection waits and is never admitted. Do not spin.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        })
        .map_err(|source| TransportError::Io {
            what: "cannot start the ZAP handler".into(),
            source,
        })
}

/// Whether a ZeroMQ endpoint is on this machine only (loopback TCP, IPC, inproc).
pub fn is_loopback(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("tcp://") else {
        return endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://");
    };
    let host = match rest.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => rest,
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses endpoints beyond loopback without keys, unless `insecure`; returns the warning to
/// print when it lets them through.
pub fn check_binds(
    endpoints: &[&str],
    keyed: bool,
    insecure: bool,
) -> Result<Option<String>, KeyError> {
    let open: Vec<&str> = endpoints
        .iter()
        .copied()
        .filter(|e| !is_loopback(e))
        .collect();
    if keyed || open.is_empty() {
        return Ok(None);
    }
    if !insecure {
        return Err(KeyError::Invalid(format!(
            "{} {} not on loopback and no keys are set: anyone who reaches {} could run code on every agent. \
             Give the broker keys (--curve-key FILE --authorized-keys DIR; see `loads keygen`) or, on a network you trust, add --insecure",
            open.join(", "),
            if open.len() == 1 { "is" } else { "are" },
            if open.len() == 1 { "it" } else { "them" }
        )));
    }
    Ok(Some(format!(
        "warning: --insecure: {} accept(s) anyone who can reach them, unauthenticated and unencrypted; use CURVE keys beyond a trusted network",
        open.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("loads-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let pair = KeyPair::generate().expect("pair");
        let (key, public) = pair.write(&dir.join("agent1")).expect("write");
        assert_eq!(KeyPair::read(&key).expect("read"), pair);
        assert_eq!(
            std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            read_public_key(public.to_str().expect("utf8")).expect("pub"),
            pair.public
        );
        assert_eq!(read_public_key(&pair.public).expect("z85"), pair.public);
        assert!(pair.write(&dir.join("agent1")).is_err(), "never overwrites");
        let set = read_authorized(&dir).expect("dir of keys");
        assert!(set.contains(&decode_key(&pair.public).expect("decode")));
        assert!(read_public_key("not a key").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_loopback_binds_without_keys() {
        assert!(is_loopback("tcp://127.0.0.1:7780"));
        assert!(is_loopback("tcp://localhost:7780"));
        assert!(is_loopback("tcp://[::1]:7780"));
        assert!(is_loopback("ipc:///tmp/x"));
        assert!(!is_loopback("tcp://0.0.0.0:7780"));
        assert!(!is_loopback("tcp://*:7780"));
        assert!(!is_loopback("tcp://10.0.0.5:7780"));
        assert_eq!(
            check_binds(&["tcp://127.0.0.1:1"], false, false).ok(),
            Some(None)
        );
        let e = check_binds(&["tcp://0.0.0.0:1"], false, false).expect_err("refused");
        assert!(e.to_string().contains("--insecure"), "{e}");
        assert!(
            check_binds(&["tcp://0.0.0.0:1"], false, true)
                .expect("allowed")
                .is_some_and(|w| w.contains("warning"))
        );
        assert_eq!(
            check_binds(&["tcp://0.0.0.0:1"], true, false).ok(),
            Some(None)
        );
    }
}
