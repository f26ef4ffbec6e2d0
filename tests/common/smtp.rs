//! A one-mail SMTP server on 127.0.0.1 for the notifier tests (tests/notify.rs, and the
//! cluster's notifier test): it greets, offers AUTH PLAIN LOGIN (and STARTTLS when asked),
//! accepts every command and one mail, and returns every command it got, the mail's data,
//! every byte it read off the connection and how its TLS handshake went. It speaks TLS (from
//! the start, or after STARTTLS) with a self-signed certificate for 127.0.0.1 that no client
//! trusts. Bounded: one connection, at most [`MAX_COMMANDS`] commands, [`MAX_DATA`] bytes of
//! data and of the connection's bytes, a read timeout of 30 s.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Most commands the server reads before it hangs up.
pub const MAX_COMMANDS: usize = 50;
/// Most bytes of mail data the server keeps.
pub const MAX_DATA: usize = 1 << 20;

/// The server's certificate, self-signed for IP 127.0.0.1, valid until 2126, made with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
/// -keyout key.pem -out cert.pem -days 36500 -subj /CN=127.0.0.1
/// -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE
/// -addext extendedKeyUsage=serverAuth`: valid for the address in every way but that no
/// authority a client trusts signed it. Test-only, as is its key.
const CERT: &[u8] = include_bytes!("../fixtures/smtp-tls/cert.pem");
/// The certificate's private key (PKCS #8).
const KEY: &[u8] = include_bytes!("../fixtures/smtp-tls/key.pem");

/// What the server offers after EHLO, and whether it speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// AUTH only (plain SMTP).
    Plain,
    /// STARTTLS too, which it never performs: it answers `454 TLS not available`.
    StarttlsRefused,
    /// STARTTLS too, performed: `220`, then a TLS handshake with [`CERT`], then SMTP over it.
    Starttls,
    /// TLS from the first byte (SMTPS) with [`CERT`], then SMTP over it.
    Tls,
}

/// What the server got on its connection.
#[derive(Debug, Default)]
pub struct Got {
    /// Every command line, without its CRLF, in order (in clear, then over TLS if it was
    /// established).
    pub commands: Vec<String>,
    /// The mail's data (between DATA and the final dot), CRLFs kept.
    pub data: String,
    /// Every byte the server read off the connection, as it travelled (TLS records encrypted).
    pub wire: Vec<u8>,
    /// How the TLS handshake went: `None` when there was none, else `Ok` or the server's
    /// error.
    pub tls: Option<Result<(), String>>,
}

impl Got {
    /// The AUTH commands.
    pub fn auth(&self) -> Vec<&str> {
        self.commands
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with("AUTH"))
            .map(String::as_str)
            .collect()
    }
}

/// Starts the server: its `127.0.0.1:PORT` and the thread that returns what it got once the
/// client quits or hangs up.
pub fn server(offer: Offer) -> (String, JoinHandle<Got>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut tap = Tap {
            s,
            wire: Vec::new(),
        };
        let mut got = Got::default();
        let secure = match offer {
            Offer::Tls => true,
            offer => converse(&mut tap, true, offer, &mut got) == End::Starttls,
        };
        if secure {
            let mut conn = rustls::ServerConnection::new(tls_config()).expect("TLS server");
            let shaken = (|| {
                while conn.is_handshaking() {
                    conn.complete_io(&mut tap)?;
                }
                Ok::<(), std::io::Error>(())
            })();
            let ok = shaken.is_ok();
            got.tls = Some(shaken.map_err(|e| e.to_string()));
            if ok {
                // After STARTTLS the client speaks first (EHLO again); SMTPS greets.
                let mut stream = rustls::Stream::new(&mut conn, &mut tap);
                converse(&mut stream, offer == Offer::Tls, Offer::Plain, &mut got);
            }
        }
        got.wire = tap.wire;
        got
    });
    (addr, h)
}

/// How an SMTP conversation ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// QUIT, a hang-up, a timeout or too many commands.
    Over,
    /// STARTTLS, answered 220: TLS follows.
    Starttls,
}

/// Talks SMTP on `s` (greeting first when `greet`), offering what `offer` says, into `got`.
fn converse<S: Read + Write>(s: &mut S, greet: bool, offer: Offer, got: &mut Got) -> End {
    let mut r = BufReader::new(s);
    if greet {
        let _ = r.get_mut().write_all(b"220 test ESMTP\r\n");
    }
    let mut in_data = false;
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 && got.commands.len() < MAX_COMMANDS {
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let _ = r.get_mut().write_all(b"250 queued\r\n");
            } else if got.data.len() + line.len() <= MAX_DATA {
                got.data.push_str(&line);
            }
            line.clear();
            continue;
        }
        let cmd = line.trim_end().to_owned();
        got.commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            match offer {
                Offer::Plain | Offer::Tls => b"250-test\r\n250 AUTH PLAIN LOGIN\r\n",
                Offer::StarttlsRefused | Offer::Starttls => {
                    b"250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
                }
            }
        } else if upper.starts_with("HELO") {
            b"250 test\r\n"
        } else if upper.starts_with("AUTH") {
            b"235 2.7.0 accepted\r\n"
        } else if upper.starts_with("STARTTLS") && offer == Offer::Starttls {
            let _ = r.get_mut().write_all(b"220 2.0.0 ready to start TLS\r\n");
            // The client waits for the 220 before its first TLS byte: nothing is buffered.
            assert!(r.buffer().is_empty(), "bytes after STARTTLS");
            return End::Starttls;
        } else if upper.starts_with("STARTTLS") {
            // Never performed: the client must not go on in clear.
            b"454 TLS not available\r\n"
        } else if upper.starts_with("DATA") {
            in_data = true;
            b"354 go\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = r.get_mut().write_all(b"221 bye\r\n");
            break;
        } else {
            b"250 ok\r\n"
        };
        let _ = r.get_mut().write_all(reply);
        line.clear();
    }
    End::Over
}

/// The connection, keeping every byte read off it (up to [`MAX_DATA`]).
struct Tap {
    s: TcpStream,
    wire: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.s.read(buf)?;
        let keep = n.min(MAX_DATA.saturating_sub(self.wire.len()));
        self.wire.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.s.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

/// The server's TLS configuration: [`CERT`] and [`KEY`], rustls' safe defaults (ring).
fn tls_config() -> Arc<rustls::ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(CERT)
        .collect::<Result<Vec<_>, _>>()
        .expect("the fixture certificate");
    let key = PrivateKeyDer::from_pem_slice(KEY).expect("the fixture key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key");
    Arc::new(config)
}
