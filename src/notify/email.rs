//! The `email` notifier: the run's summary as a plain-text mail, sent through lettre's SMTP
//! client. Its options (`--notify-email-*` in [`NotifyArgs`]) enter and are checked into
//! [`Settings`] — the caller checks them before the run starts, the broker again when it
//! sends —; a mail leaves, or a [`NotifyError`] that names the option to fix or what the server
//! said.
//!
//! The connection is plain SMTP by default (a relay on the cluster's own network), STARTTLS or
//! TLS from the start with `--notify-email-tls` (rustls, the Mozilla roots; a certificate they
//! do not vouch for fails the mail with the reason in words, from `certificate_problem`). A login
//! (`--notify-email-user` and its password) over a plain connection is refused unless the
//! server is on loopback: it would send the password in clear.

use std::time::Duration;

use super::{NotifyError, RunSummary};
use crate::config::{EmailTls, NotifyArgs};

/// How long each exchange with the SMTP server may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The subject when `--notify-email-subject` is not given.
pub(super) const DEFAULT_SUBJECT: &str = "loads: run {run_id} of {test} {verdict}";
/// The longest subject template taken (a mail header line is at most 998 characters).
const MAX_SUBJECT: usize = 900;
/// The placeholders of a subject template.
const PLACEHOLDERS: [&str; 3] = ["test", "verdict", "run_id"];

/// The email notifier's checked options.
#[derive(Debug)]
pub(super) struct Settings<'a> {
    to: &'a str,
    from: &'a str,
    host: &'a str,
    port: u16,
    tls: EmailTls,
    /// The user and the password.
    login: Option<(&'a str, &'a str)>,
    subject: &'a str,
}

impl<'a> Settings<'a> {
    /// Checks the `--notify-email-*` options of `args`.
    pub(super) fn of(args: &'a NotifyArgs) -> Result<Self, NotifyError> {
        let config = |m: String| NotifyError::Config(m);
        let (Some(to), Some(smtp)) = (args.email_to.as_deref(), args.email_smtp.as_deref()) else {
            return Err(config(
                "--notify email needs --notify-email-to ADDRESS and --notify-email-smtp HOST:PORT"
                    .into(),
            ));
        };
        let (host, port) = smtp
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| config(format!("--notify-email-smtp {smtp:?}: expected HOST:PORT")))?;
        let tls = args.email_tls.unwrap_or_default();
        let password = args.email_password.as_ref().map(|p| p.expose());
        let login = match (args.email_user.as_deref(), password) {
            (None, None) => None,
            (Some(u), Some(p)) => Some((u, p)),
            (Some(_), None) => {
                return Err(config(
                    "--notify-email-user needs a password: --notify-email-password, or LOADS_SMTP_PASSWORD in the environment".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(config(
                    "a password for the email notifier (--notify-email-password or LOADS_SMTP_PASSWORD) needs --notify-email-user USER".into(),
                ));
            }
        };
        if login.is_some() && tls == EmailTls::None && !is_loopback(host) {
            return Err(config(format!(
                "--notify-email-user over a plain connection to {host} would send the password unencrypted: add --notify-email-tls starttls (or tls, for a server that speaks TLS from the start, usually port 465)"
            )));
        }
        let subject = args.email_subject.as_deref().unwrap_or(DEFAULT_SUBJECT);
        render(subject, &RunSummary::default()).map_err(config)?;
        Ok(Settings {
            to,
            from: args.email_from.as_deref().unwrap_or("loads@localhost"),
            host,
            port,
            tls,
            login,
            subject,
        })
    }
}

/// Whether `host` is this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The subject `template` for `summary`: `{test}`, `{verdict}` and `{run_id}` replaced, `{{`
/// and `}}` for braces; an unknown placeholder, an unclosed brace or a control character is an
/// error naming `--notify-email-subject`.
fn render(template: &str, summary: &RunSummary) -> Result<String, String> {
    let bad = |why: String| format!("--notify-email-subject {template:?}: {why}");
    if template.len() > MAX_SUBJECT {
        return Err(bad(format!("longer than {MAX_SUBJECT} bytes")));
    }
    if template.chars().any(char::is_control) {
        return Err(bad(
            "a subject is one line, without control characters".into()
        ));
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{')
            && let Some(end) = t.find('}')
        {
            out.push_str(match &t[..end] {
                "test" => &summary.test,
                "verdict" => &summary.status,
                "run_id" => &summary.run_id,
                other => {
                    return Err(bad(format!(
                        "unknown placeholder {{{other}}}; the placeholders are {}",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                    )));
                }
            });
            rest = &t[end + 1..];
        } else {
            return Err(bad(
                "a brace that opens or closes no placeholder (write {{ or }} for a brace)".into(),
            ));
        }
    }
    out.push_str(rest);
    // What the run supplies (its test's name) must not break the header either.
    Ok(out.chars().filter(|c| !c.is_control()).collect())
}

/// `email`: sends `summary` as a mail with the options of `args`.
pub(super) fn send(args: &NotifyArgs, summary: &RunSummary) -> Result<(), NotifyError> {
    use lettre::Transport as _;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let s = Settings::of(args)?;
    let err = |e: String| NotifyError::Email(e);
    let message = lettre::Message::builder()
        .from(
            s.from
                .parse()
                .map_err(|e| err(format!("sender {:?}: {e}", s.from)))?,
        )
        .to(s
            .to
            .parse()
            .map_err(|e| err(format!("recipient {:?}: {e}", s.to)))?)
        .subject(render(s.subject, summary).map_err(err)?)
        .body(summary.text())
        .map_err(|e| err(e.to_string()))?;
    let tls = match s.tls {
        EmailTls::None => Tls::None,
        mode => {
            let params = TlsParameters::new_rustls(s.host.to_owned())
                .map_err(|e| err(format!("TLS for {}: {}", s.host, chain(&e))))?;
            if mode == EmailTls::Starttls {
                // Required, not opportunistic: no STARTTLS offered, nothing sent.
                Tls::Required(params)
            } else {
                Tls::Wrapper(params)
            }
        }
    };
    let mut builder = lettre::SmtpTransport::builder_dangerous(s.host)
        .port(s.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT));
    if let Some((user, password)) = s.login {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.to_owned(),
            password.to_owned(),
        ));
    }
    builder.build().send(&message).map_err(|e| {
        // A refused certificate says why in words, then as TLS said it.
        let why = match certificate_problem(&e, s.host) {
            Some(problem) => format!("{problem} ({})", chain(&e)),
            None => chain(&e),
        };
        err(format!("through {}:{}: {why}", s.host, s.port))
    })?;
    Ok(())
}

/// Why the TLS of the connection refused the server's certificate, in words, when that is
/// what `e` (or one of its causes) is.
fn certificate_problem(e: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    use rustls::CertificateError as C;
    let mut next = Some(e);
    let refused = loop {
        let e = next?;
        // rustls' errors reach lettre inside the stream's io::Error.
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(c)) = tls {
            break c;
        }
        next = e.source();
    };
    let why = match refused {
        C::UnknownIssuer => "no authority that loads trusts signed it (SMTP servers' certificates are checked against the Mozilla roots: a self-signed certificate, or one from a private authority, is refused)".to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "it is not valid for {host} (give --notify-email-smtp the name the certificate was issued for)"
        ),
        C::Expired | C::ExpiredContext { .. } => "it has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "it is not valid yet (is this machine's clock right?)".to_owned()
        }
        C::Revoked => "it was revoked".to_owned(),
        other => format!("it was refused: {other}"),
    };
    Some(format!(
        "the certificate of the SMTP server is not trusted: {why}"
    ))
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> RunSummary {
        RunSummary {
            run_id: "r1".into(),
            test: "blog::read".into(),
            status: "finished".into(),
            hits: 6,
            ..RunSummary::default()
        }
    }

    fn args(smtp: &str) -> NotifyArgs {
        NotifyArgs {
            notifiers: vec!["email".into()],
            email_to: Some("ops@example.test".into()),
            email_smtp: Some(smtp.into()),
            ..Default::default()
        }
    }

    #[test]
    fn subjects_replace_their_placeholders_and_refuse_unknown_ones() {
        let s = summary();
        assert_eq!(
            render(DEFAULT_SUBJECT, &s).expect("default"),
            "loads: run r1 of blog::read finished"
        );
        assert_eq!(
            render("[{verdict}] {test} ({run_id}) {{x}}", &s).expect("ok"),
            "[finished] blog::read (r1) {x}"
        );
        for (bad, why) in [
            ("{hits}", "unknown placeholder {hits}"),
            ("{test", "a brace"),
            ("x}", "a brace"),
            ("a\r\nBcc: x@y", "control"),
        ] {
            let e = render(bad, &s).expect_err(bad);
            assert!(
                e.contains(why) && e.contains("--notify-email-subject"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_login_over_plain_smtp_beyond_loopback_is_refused_naming_the_fix() {
        let with_login = |smtp: &str, tls: Option<EmailTls>| NotifyArgs {
            email_user: Some("u".into()),
            email_password: Some("p".parse().expect("secret")),
            email_tls: tls,
            ..args(smtp)
        };
        let e = Settings::of(&with_login("mail.example.test:25", None)).expect_err("plain");
        assert!(e.to_string().contains("--notify-email-tls starttls"), "{e}");
        for ok in ["127.0.0.1:25", "localhost:25", "[::1]:25"] {
            assert!(Settings::of(&with_login(ok, None)).is_ok(), "{ok}");
        }
        for tls in [EmailTls::Starttls, EmailTls::Tls] {
            assert!(Settings::of(&with_login("mail.example.test:587", Some(tls))).is_ok());
        }
        let no_password = NotifyArgs {
            email_user: Some("u".into()),
            ..args("127.0.0.1:25")
        };
        let e = Settings::of(&no_password).expect_err("no password");
        assert!(e.to_string().contains("LOADS_SMTP_PASSWORD"), "{e}");
        let no_user = NotifyArgs {
            email_password: Some("p".parse().expect("secret")),
            ..args("127.0.0.1:25")
        };
        let e = Settings::of(&no_user).expect_err("no user");
        assert!(e.to_string().contains("--notify-email-user"), "{e}");
        // Nothing shows the password, whatever prints the options.
        assert!(!format!("{:?}", with_login("h:1", None)).contains("\"p\""));
    }
}
