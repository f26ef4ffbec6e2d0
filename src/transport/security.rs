//! Cluster security with ZeroMQ's CURVE (encryption and authentication of every connection).
//!
//! - `loads keygen NAME` writes a key pair: `NAME.key` (public and secret, mode 0600) and
//!   `NAME.pub` (the public key, to give to others).
//! - The broker takes its key pair ([`ServerKeys`]) and the public keys it accepts (a directory
//!   of `*.pub` files, or a file with one key per line) by role ([`Roles`]: agents, callers,
//!   admins). With keys, every broker socket is a CURVE server with a ZAP domain of its own,
//!   and a ZAP handler ([`start_zap`]) admits on each socket only the keys of the role that
//!   socket serves: a connection with another key never completes, so its messages never reach
//!   a run or the database. Admitted connections are named by their public key, which the
//!   broker uses to tell whose runs are whose.
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

/// What to say when this binary's libzmq has no CURVE.
pub const NO_CURVE: &str = "this binary was built without CURVE (its libzmq cannot encrypt): build it against loads as the README says, with no [patch] of zmq or zmq-sys and no system libzmq (loads brings its own ZeroMQ built with CURVE); `cargo tree -i zmq-sys` should show loads-zmq-sys";

/// Fails with [`NO_CURVE`] when this binary's libzmq has no CURVE.
pub fn curve_available() -> Result<(), KeyError> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        Err(KeyError::Invalid(NO_CURVE.to_owned()))
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Result<KeyPair, KeyError> {
        curve_available()?;
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
            "no public key in {}: put .pub files there (`loads keygen NAME` writes them)",
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
        curve_available().map_err(|e| TransportError::Message(e.to_string()))?;
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

/// ZAP domain of the broker's back socket: agents.
pub const DOMAIN_AGENTS: &str = "agents";
/// ZAP domain of the broker's receiver: workers, which connect with their agent's key.
pub const DOMAIN_WORKERS: &str = "workers";
/// ZAP domain of the broker's front socket: callers.
pub const DOMAIN_CALLERS: &str = "callers";
/// ZAP domain of the broker's publisher and heartbeat: callers following runs.
pub const DOMAIN_SUBSCRIBERS: &str = "subscribers";

/// Which public keys may do what on a broker with CURVE.
///
/// - `agents` may connect to the back socket (register, take jobs, fetch binaries) and, for
///   their workers, to the receiver;
/// - `callers` may connect to the front socket and the publisher: they start runs and see and
///   act on **their own runs only** (a run belongs to the key that started it);
/// - `admins` are callers that see and act on every run.
///
/// A key in one list only is refused on the other sockets: a caller's key cannot register as
/// an agent (and so never receives jobs), an agent's key cannot start or stop runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// Agents (and their workers).
    pub agents: HashSet<[u8; 32]>,
    /// Callers.
    pub callers: HashSet<[u8; 32]>,
    /// Callers that may see and act on every caller's runs.
    pub admins: HashSet<[u8; 32]>,
}

impl Roles {
    /// Whether the key `key` may connect to a socket of ZAP domain `domain`.
    pub fn admits(&self, domain: &[u8], key: &[u8; 32]) -> bool {
        let caller = || self.callers.contains(key) || self.admins.contains(key);
        match domain {
            d if d == DOMAIN_AGENTS.as_bytes() || d == DOMAIN_WORKERS.as_bytes() => {
                self.agents.contains(key)
            }
            d if d == DOMAIN_CALLERS.as_bytes() || d == DOMAIN_SUBSCRIBERS.as_bytes() => caller(),
            _ => false,
        }
    }

    /// Whether the public key `z85` (as the ZAP handler names a connection) is an admin's.
    pub fn is_admin(&self, z85: &str) -> bool {
        decode_key(z85).is_ok_and(|k| self.admins.contains(&k))
    }
}

/// The broker's side: its key pair and who it admits.
#[derive(Debug, Clone)]
pub struct ServerKeys {
    /// The broker's key pair.
    pub pair: KeyPair,
    /// The admitted public keys, by role.
    pub roles: Roles,
}

impl ServerKeys {
    /// Makes `socket` a CURVE server whose clients the ZAP handler checks against the role of
    /// `domain` (one of the `DOMAIN_*` constants), before it binds.
    pub fn apply(&self, socket: &zmq::Socket, domain: &str) -> Result<(), TransportError> {
        curve_available().map_err(|e| TransportError::Message(e.to_string()))?;
        let secret =
            decode_key(&self.pair.secret).map_err(|e| TransportError::Message(e.to_string()))?;
        z("curve server", socket.set_curve_server(true))?;
        z("curve secret key", socket.set_curve_secretkey(&secret))?;
        z("zap domain", socket.set_zap_domain(domain))
    }
}

/// The running ZAP handler of a broker: stopped and joined when dropped. Keep it alive longer
/// than the sockets it checks (declare it first).
pub struct ZapGuard {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ZapGuard {
    /// Starts the ZAP handler of `ctx` for `roles`, counting refusals in `refused`.
    pub fn start(
        ctx: &zmq::Context,
        roles: Roles,
        refused: Arc<AtomicU64>,
    ) -> Result<ZapGuard, TransportError> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = start_zap(ctx, roles, refused, stop.clone())?;
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

/// Starts the ZAP handler of `ctx`: it admits CURVE clients whose public key `roles` admits on
/// the socket's domain, names each admitted connection by its public key in Z85 (the
/// `User-Id` property of its messages), and counts the others in `refused`, until `stop` is
/// set.
pub fn start_zap(
    ctx: &zmq::Context,
    roles: Roles,
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
                let domain = frames.get(2).map(Vec::as_slice).unwrap_or_default();
                let mechanism = frames.get(5).map(Vec::as_slice).unwrap_or_default();
                let key = frames
                    .get(6)
                    .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok());
                let admitted = key.filter(|k| {
                    version == b"1.0" && mechanism == b"CURVE" && roles.admits(domain, k)
                });
                if admitted.is_none() {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                let user = admitted
                    .and_then(|k| zmq::z85_encode(&k).ok())
                    .unwrap_or_default();
                let (code, text): (&[u8], &[u8]) = if admitted.is_some() {
                    (b"200", b"OK")
                } else {
                    (b"400", b"key not authorised for this socket")
                };
                if handler
                    .send_multipart(
                        [
                            version.as_slice(),
                            &request_id,
                            code,
                            text,
                            user.as_bytes(),
                            b"",
                        ],
                        0,
                    )
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
    fn each_socket_admits_the_keys_of_its_role_only() {
        let key = |b: u8| [b; 32];
        let roles = Roles {
            agents: [key(1)].into(),
            callers: [key(2)].into(),
            admins: [key(3)].into(),
        };
        for d in [DOMAIN_AGENTS, DOMAIN_WORKERS] {
            assert!(roles.admits(d.as_bytes(), &key(1)));
            assert!(!roles.admits(d.as_bytes(), &key(2)), "a caller as an agent");
            assert!(!roles.admits(d.as_bytes(), &key(3)), "an admin as an agent");
        }
        for d in [DOMAIN_CALLERS, DOMAIN_SUBSCRIBERS] {
            assert!(!roles.admits(d.as_bytes(), &key(1)), "an agent as a caller");
            assert!(roles.admits(d.as_bytes(), &key(2)));
            assert!(roles.admits(d.as_bytes(), &key(3)));
        }
        assert!(!roles.admits(b"loads", &key(1)), "an unknown domain");
        let z = |k: [u8; 32]| zmq::z85_encode(&k).expect("z85");
        assert!(roles.is_admin(&z(key(3))));
        assert!(!roles.is_admin(&z(key(2))));
        assert!(!roles.is_admin("not a key"));
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
