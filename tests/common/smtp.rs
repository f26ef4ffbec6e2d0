//! A one-mail SMTP server on 127.0.0.1 for the notifier tests (tests/notify.rs, and the
//! cluster's notifier test): it greets, offers AUTH PLAIN LOGIN (and STARTTLS when asked),
//! accepts every command and one mail, and returns every command it got and the mail's data.
//! Bounded: one connection, at most [`MAX_COMMANDS`] commands and [`MAX_DATA`] bytes of data,
//! a read timeout of 30 s.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

/// Most commands the server reads before it hangs up.
pub const MAX_COMMANDS: usize = 50;
/// Most bytes of mail data the server keeps.
pub const MAX_DATA: usize = 1 << 20;

/// What the server offers after EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// AUTH only (plain SMTP).
    Plain,
    /// STARTTLS too, which it never performs: it answers `454 TLS not available`.
    StarttlsRefused,
}

/// What the server got on its connection.
#[derive(Debug, Default)]
pub struct Got {
    /// Every command line, without its CRLF, in order.
    pub commands: Vec<String>,
    /// The mail's data (between DATA and the final dot), CRLFs kept.
    pub data: String,
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
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        let _ = w.write_all(b"220 test ESMTP\r\n");
        let mut got = Got::default();
        let mut in_data = false;
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 && got.commands.len() < MAX_COMMANDS {
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    let _ = w.write_all(b"250 queued\r\n");
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
                    Offer::Plain => b"250-test\r\n250 AUTH PLAIN LOGIN\r\n",
                    Offer::StarttlsRefused => {
                        b"250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
                    }
                }
            } else if upper.starts_with("HELO") {
                b"250 test\r\n"
            } else if upper.starts_with("AUTH") {
                b"235 2.7.0 accepted\r\n"
            } else if upper.starts_with("STARTTLS") {
                // Never performed: the client must not go on in clear.
                b"454 TLS not available\r\n"
            } else if upper.starts_with("DATA") {
                in_data = true;
                b"354 go\r\n"
            } else if upper.starts_with("QUIT") {
                let _ = w.write_all(b"221 bye\r\n");
                break;
            } else {
                b"250 ok\r\n"
            };
            let _ = w.write_all(reply);
            line.clear();
        }
        got
    });
    (addr, h)
}
