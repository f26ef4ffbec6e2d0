//! The email notifier against a real SMTP server on 127.0.0.1 (tests/common/smtp.rs): what it
//! sends, and what it never sends in clear. Notifiers run on a broker when a run ends: the
//! whole path, from `loads run --notify email` on a cluster, is tests/cluster.rs's notifier
//! test; these call the notifiers as the broker does (`notify_all`), one exchange each.

mod common;

use common::smtp::{self, Offer};
use loads::__private::internals::{RunSummary, notify_all};
use loads::config::{EmailTls, NotifyArgs};

fn summary() -> RunSummary {
    RunSummary {
        run_id: "r1".into(),
        test: "blog::read".into(),
        status: "finished".into(),
        hits: 6,
        ..RunSummary::default()
    }
}

/// The email notifier's options, to `smtp`.
fn args(smtp: &str) -> NotifyArgs {
    NotifyArgs {
        notifiers: vec!["email".into()],
        email_to: Some("ops@example.test".into()),
        email_smtp: Some(smtp.into()),
        ..Default::default()
    }
}

/// `args` with the login `alice` / `s3cret`.
fn with_login(smtp: &str, tls: Option<EmailTls>) -> NotifyArgs {
    NotifyArgs {
        email_user: Some("alice".into()),
        email_password: Some("s3cret".parse().expect("secret")),
        email_tls: tls,
        ..args(smtp)
    }
}

#[test]
fn the_login_and_the_subject_reach_the_smtp_server() {
    use base64::Engine as _;
    let (addr, got) = smtp::server(Offer::Plain);
    let a = NotifyArgs {
        email_subject: Some("[{verdict}] {test}".into()),
        ..with_login(&addr, None)
    };
    let errors = notify_all(&a, &summary());
    assert!(errors.is_empty(), "{errors:?}");
    let got = got.join().expect("server");
    let auth = got
        .commands
        .iter()
        .find(|c| c.to_ascii_uppercase().starts_with("AUTH PLAIN"))
        .unwrap_or_else(|| panic!("no AUTH PLAIN in {:?}", got.commands));
    let token = auth.split_whitespace().nth(2).expect("initial response");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64");
    assert_eq!(decoded, b"\0alice\0s3cret", "{:?}", got.commands);
    assert!(
        got.data.contains("Subject: [finished] blog::read\r\n"),
        "{}",
        got.data
    );
    assert!(got.data.contains("Hits: 6"), "{}", got.data);
}

#[test]
fn starttls_that_does_not_happen_sends_nothing_in_clear() {
    let (addr, got) = smtp::server(Offer::StarttlsRefused);
    let errors = notify_all(&with_login(&addr, Some(EmailTls::Starttls)), &summary());
    let [e] = errors.as_slice() else {
        panic!("one error expected: {errors:?}");
    };
    assert!(
        e.to_string().starts_with("email: through 127.0.0.1:"),
        "{e}"
    );
    let got = got.join().expect("server");
    assert!(
        got.commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("STARTTLS")),
        "{:?}",
        got.commands
    );
    assert!(
        !got.commands
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with("AUTH")
                || c.to_ascii_uppercase().starts_with("MAIL")),
        "{:?}",
        got.commands
    );
    assert!(got.data.is_empty());
}

/// Fails unless nothing the server read off the connection — in clear, or in the TLS records
/// it could not decrypt for a handshake that failed — holds the password (as it is, or as AUTH
/// PLAIN or LOGIN encode it) or a MAIL or AUTH command, and it took no such command.
fn nothing_sent_in_clear(got: &smtp::Got) {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let needles = [
        b"s3cret".to_vec(),
        b64(b"\0alice\0s3cret").into_bytes(),
        b64(b"s3cret").into_bytes(),
        b"MAIL FROM".to_vec(),
        b"AUTH".to_vec(),
    ];
    for n in &needles {
        assert!(
            !got.wire.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n)),
            "{:?} on the wire",
            String::from_utf8_lossy(n)
        );
    }
    assert!(
        !got.commands.iter().any(|c| {
            let c = c.to_ascii_uppercase();
            c.starts_with("AUTH") || c.starts_with("MAIL")
        }),
        "{:?}",
        got.commands
    );
    assert!(got.data.is_empty(), "{}", got.data);
}

/// The one error of `errors`, which names the untrusted certificate of 127.0.0.1.
fn untrusted_certificate(errors: &[loads::__private::internals::NotifyError]) -> String {
    let [e] = errors else {
        panic!("one error expected: {errors:?}");
    };
    let text = e.to_string();
    assert!(text.starts_with("email: through 127.0.0.1:"), "{text}");
    assert!(
        text.contains("certificate") && text.contains("not trusted"),
        "{text}"
    );
    text
}

/// Fails unless the server's TLS handshake took place and the client ended it for the
/// certificate's authority (the alert rustls sends for an unknown issuer).
fn refused_by_the_client(got: &smtp::Got, client_said: &str) {
    assert!(
        matches!(&got.tls, Some(Err(e)) if e.contains("UnknownCA")),
        "server: {:?}; client: {client_said}",
        got.tls
    );
}

#[test]
fn tls_to_a_server_with_an_untrusted_certificate_fails_naming_it_and_sends_nothing() {
    let (addr, got) = smtp::server(Offer::Tls);
    let errors = notify_all(&with_login(&addr, Some(EmailTls::Tls)), &summary());
    let text = untrusted_certificate(&errors);
    let got = got.join().expect("server");
    // A real handshake, which the client broke off for the certificate: no SMTP at all.
    refused_by_the_client(&got, &text);
    assert!(got.commands.is_empty(), "{:?}", got.commands);
    nothing_sent_in_clear(&got);
}

#[test]
fn starttls_to_a_server_with_an_untrusted_certificate_fails_naming_it_and_sends_nothing() {
    let (addr, got) = smtp::server(Offer::Starttls);
    let errors = notify_all(&with_login(&addr, Some(EmailTls::Starttls)), &summary());
    let text = untrusted_certificate(&errors);
    let got = got.join().expect("server");
    // EHLO, STARTTLS (answered 220), then a real handshake, which the client broke off.
    let upper: Vec<String> = got
        .commands
        .iter()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    assert!(
        upper.len() == 2 && upper[0].starts_with("EHLO ") && upper[1] == "STARTTLS",
        "{:?}",
        got.commands
    );
    refused_by_the_client(&got, &text);
    nothing_sent_in_clear(&got);
}
