//! Alert email over SMTP, against a small SMTP server written here: it
//! listens on loopback, speaks EHLO, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA,
//! RSET, NOOP and QUIT, records what each connection did, and fails one
//! stage of a connection with a 4xx or 5xx reply on demand.
//!
//! As in the webhook tests, timing is checked on tokio's paused clock with
//! auto-advance held off, and every wait is on an event (a delivery outcome,
//! a connection ending), never a sleep.

use super::{
    alerts_config, env, freeze_clock, next_event, rotation_alert, Receiver, TestStore, PATIENCE,
};
use crate::support::{Backend, TestGateway};
use base64::Engine as _;
use keygate::alerts::{Alert, Alerts, DeliveryResult, Raised};
use keygate::config::{AlertsConfig, Config, RawConfig};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Where a connection can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The greeting (the server is unavailable).
    Greeting,
    /// The reply to AUTH (credentials refused).
    Auth,
    /// The reply to MAIL FROM.
    Mail,
    /// The reply to RCPT TO.
    Rcpt,
    /// The reply after the message's final `.`.
    Data,
}

/// What one connection does differently: fail `Stage` with the code.
type Fault = Option<(Stage, u16)>;

/// One connection as the server saw it.
#[derive(Debug)]
struct Session {
    at: tokio::time::Instant,
    /// Command verbs in order (`EHLO`, `AUTH`, `MAIL`, …).
    verbs: Vec<String>,
    /// (mechanism, user, password) of the AUTH exchange.
    auth: Option<(String, String, String)>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-stuffing undone.
    message: Option<String>,
    /// Whether the message was answered 250.
    accepted: bool,
}

impl Session {
    /// The message's headers, folded lines joined.
    fn headers(&self) -> Vec<(String, String)> {
        let message = self.message.as_deref().expect("no message");
        let (head, _) = message.split_once("\r\n\r\n").expect("no header end");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("folded first line");
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("header without ':'");
                headers.push((name.to_string(), value.trim_start().to_string()));
            }
        }
        headers
    }

    /// The one header called `name` (any case).
    fn header(&self, name: &str) -> String {
        let found: Vec<String> = self
            .headers()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0].clone()
    }

    /// The body, CRLFs as LFs.
    fn body(&self) -> String {
        let message = self.message.as_deref().expect("no message");
        let (_, body) = message.split_once("\r\n\r\n").expect("no header end");
        body.replace("\r\n", "\n")
    }
}

/// An SMTP server on loopback.
struct SmtpServer {
    port: u16,
    sessions: mpsc::UnboundedReceiver<Session>,
}

impl SmtpServer {
    /// A server that fails connection n as `faults[n]` says (then none),
    /// offering AUTH with `mechanisms` (`"PLAIN LOGIN"`; empty: no AUTH).
    async fn start(faults: &[Fault], mechanisms: &'static str) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen, sessions) = mpsc::unbounded_channel();
        let faults = Arc::new(Mutex::new(faults.iter().copied().collect::<VecDeque<_>>()));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let fault = faults.lock().unwrap().pop_front().flatten();
                tokio::spawn(serve(stream, fault, mechanisms, seen.clone()));
            }
        });
        SmtpServer { port, sessions }
    }

    /// The next connection, once it has ended (waiting for it).
    async fn next(&mut self) -> Session {
        tokio::time::timeout(PATIENCE, self.sessions.recv())
            .await
            .expect("no SMTP connection ended")
            .unwrap()
    }

    /// Connections ended and not yet taken, without waiting.
    fn pending(&mut self) -> Vec<Session> {
        let mut all = Vec::new();
        while let Ok(session) = self.sessions.try_recv() {
            all.push(session);
        }
        all
    }
}

fn decode(text: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

async fn serve(
    stream: tokio::net::TcpStream,
    fault: Fault,
    mechanisms: &'static str,
    seen: mpsc::UnboundedSender<Session>,
) {
    let mut session = Session {
        at: tokio::time::Instant::now(),
        verbs: Vec::new(),
        auth: None,
        mail_from: None,
        rcpt_to: Vec::new(),
        message: None,
        accepted: false,
    };
    let fails = |stage: Stage| match fault {
        Some((at, code)) if at == stage => Some(code),
        _ => None,
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // Sends a reply; false when the client has gone.
    macro_rules! reply {
        ($($arg:tt)*) => {
            write.write_all(format!($($arg)*).as_bytes()).await.is_ok()
        };
    }
    async fn line(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
        let mut text = String::new();
        match read.read_line(&mut text).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(text.trim_end_matches(['\r', '\n']).to_string()),
        }
    }
    if let Some(code) = fails(Stage::Greeting) {
        let _ = reply!("{code} mx.keygate.test not available now\r\n");
        let _ = seen.send(session);
        return;
    }
    if !reply!("220 mx.keygate.test ESMTP test server\r\n") {
        let _ = seen.send(session);
        return;
    }
    while let Some(command) = line(&mut read).await {
        let (verb, argument) = command.split_once(' ').unwrap_or((&command, ""));
        let verb = verb.to_ascii_uppercase();
        session.verbs.push(verb.clone());
        let sent = match verb.as_str() {
            "EHLO" | "HELO" => {
                let auth = if mechanisms.is_empty() {
                    String::new()
                } else {
                    format!("250-AUTH {mechanisms}\r\n")
                };
                reply!("250-mx.keygate.test\r\n{auth}250-8BITMIME\r\n250 SIZE 10485760\r\n")
            }
            "AUTH" => {
                let mut parts = argument.split(' ');
                let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next().map(str::to_string);
                let credentials = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(response) => Some(response),
                            None => {
                                let _ = reply!("334 \r\n");
                                line(&mut read).await
                            }
                        };
                        response.and_then(|r| {
                            let decoded = decode(&r);
                            let mut fields = decoded.split('\0').skip(1);
                            Some((fields.next()?.to_string(), fields.next()?.to_string()))
                        })
                    }
                    "LOGIN" => {
                        let _ = reply!(
                            "334 {}\r\n",
                            base64::engine::general_purpose::STANDARD.encode("Username:")
                        );
                        let user = line(&mut read).await.map(|u| decode(&u));
                        let _ = reply!(
                            "334 {}\r\n",
                            base64::engine::general_purpose::STANDARD.encode("Password:")
                        );
                        let password = line(&mut read).await.map(|p| decode(&p));
                        user.zip(password)
                    }
                    _ => None,
                };
                match credentials {
                    Some((user, password)) => {
                        session.auth = Some((mechanism, user.clone(), password.clone()));
                        match fails(Stage::Auth) {
                            // A careless server that echoes what it was sent.
                            Some(code) => reply!(
                                "{code} 5.7.8 authentication failed for {user} with {password}\r\n"
                            ),
                            None => reply!("235 2.7.0 authenticated\r\n"),
                        }
                    }
                    None => reply!("504 5.5.4 unrecognised authentication\r\n"),
                }
            }
            "MAIL" => {
                session.mail_from = Some(argument.to_string());
                match fails(Stage::Mail) {
                    Some(code) => reply!("{code} 4.3.0 sender refused\r\n"),
                    None => reply!("250 2.1.0 ok\r\n"),
                }
            }
            "RCPT" => {
                session.rcpt_to.push(argument.to_string());
                match fails(Stage::Rcpt) {
                    Some(code) => reply!("{code} 5.1.1 no such user\r\n"),
                    None => reply!("250 2.1.5 ok\r\n"),
                }
            }
            "DATA" => {
                let _ = reply!("354 end with <CRLF>.<CRLF>\r\n");
                let mut lines = Vec::new();
                while let Some(data) = line(&mut read).await {
                    if data == "." {
                        break;
                    }
                    // Undo dot-stuffing (RFC 5321 4.5.2).
                    lines.push(data.strip_prefix('.').map_or(data.clone(), str::to_string));
                }
                session.message = Some(lines.join("\r\n"));
                match fails(Stage::Data) {
                    Some(code) => reply!("{code} 4.7.1 try again later\r\n"),
                    None => {
                        session.accepted = true;
                        reply!("250 2.0.0 queued\r\n")
                    }
                }
            }
            "RSET" | "NOOP" => reply!("250 2.0.0 ok\r\n"),
            "QUIT" => {
                let _ = reply!("221 2.0.0 bye\r\n");
                break;
            }
            _ => reply!("502 5.5.2 not implemented\r\n"),
        };
        if !sent {
            break;
        }
    }
    let _ = seen.send(session);
}

const FROM: &str = "keygate alerts <alerts@keygate.test>";
const TO: &str = "oncall@example.com, Security <sec@example.org>";

/// A password made now: nothing credential-shaped is committed.
fn fresh_password() -> String {
    format!("pw-{:032x}", rand::random::<u128>())
}

/// The environment of one email channel to `server` (plain SMTP to
/// loopback), with `extra` variables.
fn email_env(port: u16, extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    let url = format!("smtp://127.0.0.1:{port}?tls=none");
    let mut vars = env(&[
        ("KEYGATE_ALERT_EMAIL_SMTP_URL", &url),
        ("KEYGATE_ALERT_EMAIL_FROM", FROM),
        ("KEYGATE_ALERT_EMAIL_TO", TO),
    ]);
    vars.extend(env(extra));
    vars
}

fn email_channel(port: u16, extra: &[(&str, &str)]) -> AlertsConfig {
    alerts_config("", &email_env(port, extra))
}

/// Log lines written on this thread while the guard lives (the tests run
/// on tokio's current-thread runtime, so the delivery worker's lines too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

/// Ends a capture when dropped.
struct CaptureGuard(
    #[allow(dead_code)] tracing::subscriber::DefaultGuard,
    #[allow(dead_code)] tracing::Dispatch,
);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Capture until the guard is dropped.
    ///
    /// While a single subscriber is registered, tracing lets the thread that
    /// first reaches a log line decide alone whether anyone wants it, and
    /// caches the answer: another test's thread, without a subscriber, would
    /// switch the line off for this one too. A second, silent dispatcher
    /// kept alive alongside makes every line ask all of them.
    fn capture() -> (Logs, CaptureGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (logs, CaptureGuard(guard, silent))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn delivered_as_email(backend: Backend) {
    let store = TestStore::open(backend).await;
    let mut server = SmtpServer::start(&[], "PLAIN LOGIN").await;
    let password = fresh_password();
    let config = email_channel(
        server.port,
        &[
            ("KEYGATE_ALERT_EMAIL_USERNAME", "keygate@keygate.test"),
            ("KEYGATE_ALERT_EMAIL_PASSWORD", &password),
        ],
    );
    let alerts = Alerts::start(Arc::clone(&store.store), &config, None)
        .await
        .unwrap();
    assert_eq!(alerts.channels(), ["env-email"]);
    let mut events = alerts.subscribe();

    let Raised::Stored { id, deliveries } = alerts.raise(rotation_alert("key_abc")).await.unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 1);
    let event = next_event(&mut events).await;
    assert_eq!(
        (event.channel.as_str(), event.attempt, &event.result),
        ("env-email", 1, &DeliveryResult::Delivered)
    );
    let session = server.next().await;
    assert!(server.pending().is_empty(), "more than one connection");

    // The SMTP conversation: AUTH PLAIN with the configured credentials,
    // the envelope, one accepted message, QUIT.
    assert_eq!(
        session.verbs,
        ["EHLO", "AUTH", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    );
    assert_eq!(
        session.auth,
        Some((
            "PLAIN".to_string(),
            "keygate@keygate.test".to_string(),
            password.clone()
        ))
    );
    assert!(session.accepted);
    assert!(session
        .mail_from
        .as_deref()
        .unwrap()
        .contains("<alerts@keygate.test>"));
    assert!(session.rcpt_to[0].contains("<oncall@example.com>"));
    assert!(session.rcpt_to[1].contains("<sec@example.org>"));

    // Headers.
    let delivery = event.delivery_id.as_str();
    assert_eq!(
        session.header("Subject"),
        "[keygate] key.rotation_due: key_abc"
    );
    assert_eq!(
        session.header("From"),
        "\"keygate alerts\" <alerts@keygate.test>"
    );
    let to = session.header("To");
    assert!(
        to.contains("oncall@example.com") && to.contains("Security <sec@example.org>"),
        "{to}"
    );
    assert_eq!(session.header("X-Keygate-Delivery"), delivery);
    assert_eq!(
        session.header("Message-ID"),
        format!("<{delivery}@keygate.test>")
    );
    assert_eq!(session.header("X-Keygate-Alert-Kind"), "key.rotation_due");
    assert_eq!(session.header("X-Keygate-Alert-Id"), id);
    assert_eq!(session.header("Auto-Submitted"), "auto-generated");
    assert!(session.header("Content-Type").starts_with("text/plain"));

    // The body: the facts of the JSON document.
    let body = session.body();
    assert!(
        body.starts_with("Key key_abc is 91 days old; rotate it.\n\n"),
        "{body}"
    );
    for line in [
        "kind:        key.rotation_due\n".to_string(),
        "subject:     key_abc\n".to_string(),
        "owner:       alice@example.com\n".to_string(),
        format!("alert id:    {id}\n"),
        format!("delivery id: {delivery}\n"),
        "  policy: 90d\n".to_string(),
        "  secret_age_days: 91\n".to_string(),
    ] {
        assert!(body.contains(&line), "{line:?} not in\n{body}");
    }
    assert!(body.contains("raised at:   20"), "{body}");
    // The password travels only in AUTH.
    assert!(!session.message.as_deref().unwrap().contains(&password));

    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].channel.as_str(), rows[0].attempts),
        ("env-email", 1)
    );
    assert!(rows[0].delivered_at.is_some() && rows[0].last_error.is_none());
    drop(alerts);
    store.finish().await;
}

#[tokio::test]
async fn an_alert_is_emailed_once_with_stable_ids_and_the_json_facts_sqlite() {
    delivered_as_email(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_alert_is_emailed_once_with_stable_ids_and_the_json_facts_postgres() {
    delivered_as_email(Backend::Postgres).await;
}

#[tokio::test(start_paused = true)]
async fn a_451_is_retried_on_the_webhook_schedule_and_one_message_is_accepted() {
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    let mut server = SmtpServer::start(
        &[Some((Stage::Data, 451)), Some((Stage::Rcpt, 452))],
        "PLAIN LOGIN",
    )
    .await;
    let alerts = Alerts::start(
        Arc::clone(&store.store),
        &email_channel(server.port, &[]),
        None,
    )
    .await
    .unwrap();
    let mut events = alerts.subscribe();
    let Raised::Stored { id, .. } = alerts.raise(rotation_alert("key_r")).await.unwrap() else {
        panic!("not stored")
    };

    // Attempt 1: the message is answered 451; the next attempt is 5 s away,
    // less up to a quarter, as for webhooks.
    let first = next_event(&mut events).await;
    let DeliveryResult::Retrying {
        retry_in: delay_1,
        ref error,
        ..
    } = first.result
    else {
        panic!("{first:?}")
    };
    assert_eq!(
        (first.attempt, error.as_str()),
        (1, "SMTP 451: temporarily refused")
    );
    assert!(
        delay_1 >= Duration::from_millis(3_750) && delay_1 <= Duration::from_secs(5),
        "{delay_1:?}"
    );
    let mut sessions = vec![server.next().await];
    assert!(!sessions[0].accepted && sessions[0].message.is_some());

    // Nothing a millisecond before it is due.
    tokio::time::advance(delay_1 - Duration::from_millis(1)).await;
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!((rows[0].attempts, rows[0].delivered_at), (1, None));
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("SMTP 451: temporarily refused")
    );
    assert!(server.pending().is_empty());
    tokio::time::advance(Duration::from_millis(1)).await;

    // Attempt 2: a recipient is answered 452; the delay doubles.
    let second = next_event(&mut events).await;
    let DeliveryResult::Retrying {
        retry_in: delay_2,
        ref error,
        ..
    } = second.result
    else {
        panic!("{second:?}")
    };
    assert_eq!(
        (second.attempt, error.as_str()),
        (2, "SMTP 452: temporarily refused")
    );
    assert!(
        delay_2 >= Duration::from_millis(7_500) && delay_2 <= Duration::from_secs(10),
        "{delay_2:?}"
    );
    sessions.push(server.next().await);
    assert!(sessions[1].message.is_none(), "DATA after a refused RCPT");
    tokio::time::advance(delay_2).await;

    // Attempt 3 is accepted.
    let third = next_event(&mut events).await;
    assert_eq!(
        (third.attempt, third.result),
        (3, DeliveryResult::Delivered)
    );
    sessions.push(server.next().await);
    assert!(server.pending().is_empty());
    assert_eq!(sessions[1].at - sessions[0].at, delay_1);
    assert_eq!(sessions[2].at - sessions[1].at, delay_2);

    // Exactly one message accepted, and the retried message is the one
    // first refused, byte for byte: same Message-ID, same delivery id.
    let accepted: Vec<&Session> = sessions.iter().filter(|s| s.accepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].message, sessions[0].message);
    assert_eq!(
        sessions[0].header("X-Keygate-Delivery"),
        third.delivery_id.as_str()
    );
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].delivered_at.is_some());
    drop(alerts);
    store.finish().await;
}

#[tokio::test(start_paused = true)]
async fn auth_login_credentials_are_sent_but_never_logged_recorded_or_echoed() {
    let (logs, _guard) = Logs::capture();
    let _frozen = freeze_clock();
    let store = TestStore::open(Backend::Sqlite).await;
    // Offers only LOGIN; refuses the first AUTH with a reply that echoes
    // the password.
    let mut server = SmtpServer::start(&[Some((Stage::Auth, 535))], "LOGIN").await;
    let password = fresh_password();
    let config = email_channel(
        server.port,
        &[
            ("KEYGATE_ALERT_EMAIL_USERNAME", "keygate"),
            ("KEYGATE_ALERT_EMAIL_PASSWORD", &password),
        ],
    );
    assert!(!format!("{config:?}").contains(&password));
    let alerts = Alerts::start(Arc::clone(&store.store), &config, None)
        .await
        .unwrap();
    let mut events = alerts.subscribe();
    let Raised::Stored { id, .. } = alerts.raise(rotation_alert("key_l")).await.unwrap() else {
        panic!("not stored")
    };

    let first = next_event(&mut events).await;
    let DeliveryResult::Retrying {
        ref error,
        retry_in,
        ..
    } = first.result
    else {
        panic!("{first:?}")
    };
    // The code, not the server's words (which carry the password).
    assert_eq!(error, "SMTP 535: authentication refused");
    let refused = server.next().await;
    assert_eq!(
        refused.auth,
        Some(("LOGIN".to_string(), "keygate".to_string(), password.clone()))
    );
    assert_eq!(refused.verbs[..2], ["EHLO", "AUTH"]);
    assert!(!refused.verbs.contains(&"MAIL".to_string()));

    tokio::time::advance(retry_in).await;
    let second = next_event(&mut events).await;
    assert_eq!(second.result, DeliveryResult::Delivered);
    let accepted = server.next().await;
    assert!(accepted.accepted);
    assert_eq!(
        accepted.auth.as_ref().map(|(m, _, p)| (m.as_str(), p)),
        Some(("LOGIN", &password))
    );

    // Nowhere a trace: not in logs (of any level), not in the outbox.
    let text = logs.text();
    assert!(
        text.contains("error=SMTP 535: authentication refused")
            && text.contains("alert delivery failed; will retry"),
        "{text}"
    );
    assert!(text.contains("alert delivered"), "{text}");
    assert!(text.contains("alert email configured"), "{text}");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in [
        password.clone(),
        b64(&password),
        b64(&format!("\0keygate\0{password}")),
    ] {
        assert!(!text.contains(&secret), "logged: {text}");
    }
    assert!(!text.contains("authentication failed for"), "{text}");
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    let stored = format!("{rows:?}{:?}", store.store.recent_alerts(10).await.unwrap());
    assert!(!stored.contains(&password), "{stored}");
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("SMTP 535: authentication refused")
    );
    drop(alerts);
    store.finish().await;
}

#[tokio::test]
async fn every_smtp_failure_is_recorded_as_a_short_status_and_retried() {
    // A port nobody listens on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases: [(Fault, &str, bool, &str); 7] = [
        (
            Some((Stage::Greeting, 421)),
            "PLAIN",
            true,
            "SMTP 421: service not available",
        ),
        (
            Some((Stage::Auth, 454)),
            "PLAIN",
            true,
            "SMTP 454: TLS or authentication temporarily unavailable",
        ),
        (
            Some((Stage::Mail, 451)),
            "PLAIN",
            true,
            "SMTP 451: temporarily refused",
        ),
        (
            Some((Stage::Rcpt, 550)),
            "PLAIN",
            true,
            "SMTP 550: address refused",
        ),
        (
            Some((Stage::Data, 554)),
            "PLAIN",
            true,
            "SMTP 554: transaction failed",
        ),
        // AUTH configured, but the server offers none lettre can use.
        (
            None,
            "CRAM-MD5",
            true,
            "the server offers no AUTH PLAIN or LOGIN",
        ),
        // smtp:// without ?tls=none: STARTTLS is required, and not offered.
        (None, "PLAIN", false, "the server does not offer STARTTLS"),
    ];
    for (fault, mechanisms, plain, expected) in cases {
        let store = TestStore::open(Backend::Sqlite).await;
        let mut server = SmtpServer::start(&[fault], mechanisms).await;
        let password = fresh_password();
        let mut vars = email_env(
            server.port,
            &[
                ("KEYGATE_ALERT_EMAIL_USERNAME", "keygate"),
                ("KEYGATE_ALERT_EMAIL_PASSWORD", &password),
            ],
        );
        if !plain {
            vars.insert(
                "KEYGATE_ALERT_EMAIL_SMTP_URL".into(),
                format!("smtp://127.0.0.1:{}", server.port),
            );
        }
        let alerts = Alerts::start(Arc::clone(&store.store), &alerts_config("", &vars), None)
            .await
            .unwrap();
        let mut events = alerts.subscribe();
        alerts.raise(rotation_alert("key_f")).await.unwrap();
        let event = next_event(&mut events).await;
        let DeliveryResult::Retrying { error, .. } = &event.result else {
            panic!("{expected}: {event:?}")
        };
        assert_eq!(error, expected);
        let session = server.next().await;
        assert!(!session.accepted, "{expected}");
        if !plain {
            // Nothing sent in the clear: no credentials, no envelope.
            assert!(
                session.auth.is_none() && session.mail_from.is_none(),
                "{session:?}"
            );
        }
        drop(alerts);
        store.finish().await;
    }

    // Nobody listening.
    let store = TestStore::open(Backend::Sqlite).await;
    let alerts = Alerts::start(Arc::clone(&store.store), &email_channel(closed, &[]), None)
        .await
        .unwrap();
    let mut events = alerts.subscribe();
    alerts.raise(rotation_alert("key_c")).await.unwrap();
    let DeliveryResult::Retrying { error, .. } = next_event(&mut events).await.result else {
        panic!("connection refused was not retried")
    };
    assert_eq!(error, "could not connect: connection refused");
    drop(alerts);
    store.finish().await;
}

#[tokio::test]
async fn each_matching_channel_gets_one_delivery_and_a_duplicate_none() {
    let store = TestStore::open(Backend::Sqlite).await;
    let mut server = SmtpServer::start(&[], "PLAIN").await;
    let mut receiver = Receiver::start(&[]).await;
    let config = alerts_config(
        &format!(
            r#"
            [[alerts.webhooks]]
            name = "chat"
            url = "{}"
            format = "slack"

            [[alerts.email]]
            name = "security-mail"
            smtp_url = "smtp://127.0.0.1:{}?tls=none"
            from = "alerts@keygate.test"
            to = ["security@example.com"]
            kinds = ["leak.*"]
            "#,
            receiver.url, server.port
        ),
        &env(&[]),
    );
    let alerts = Alerts::start(Arc::clone(&store.store), &config, None)
        .await
        .unwrap();
    assert_eq!(alerts.channels(), ["chat", "security-mail"]);
    let mut events = alerts.subscribe();

    // Not a leak: the webhook only.
    let Raised::Stored { deliveries, .. } = alerts.raise(rotation_alert("key_k")).await.unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 1);
    assert_eq!(next_event(&mut events).await.channel, "chat");
    receiver.next().await;

    // A leak: both, once, however often it is raised.
    let leak = Alert::new(
        "leak.reported",
        "Key key_z was found in a public repository.",
    )
    .subject("key_z")
    .dedupe_key("leak:key_z");
    let Raised::Stored { id, deliveries } = alerts.raise(leak.clone()).await.unwrap() else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 2);
    assert_eq!(alerts.raise(leak.clone()).await.unwrap(), Raised::Duplicate);
    let mut channels = vec![
        next_event(&mut events).await.channel,
        next_event(&mut events).await.channel,
    ];
    channels.sort();
    assert_eq!(channels, ["chat", "security-mail"]);
    assert_eq!(alerts.raise(leak).await.unwrap(), Raised::Duplicate);
    let session = server.next().await;
    assert_eq!(session.header("Subject"), "[keygate] leak.reported: key_z");
    assert_eq!(session.rcpt_to.len(), 1);
    receiver.next().await;

    // Another alert afterwards: had the duplicates queued anything, it
    // would have been sent before this one.
    alerts
        .raise(Alert::new("leak.reported", "Key key_y leaked.").subject("key_y"))
        .await
        .unwrap();
    next_event(&mut events).await;
    next_event(&mut events).await;
    assert_eq!(
        server.next().await.header("Subject"),
        "[keygate] leak.reported: key_y"
    );
    assert!(server.pending().is_empty());
    let rows = store.store.alert_deliveries(&id).await.unwrap();
    assert_eq!(rows.len(), 2);
    drop(alerts);
    store.finish().await;
}

#[test]
fn unencrypted_smtp_to_a_remote_host_and_bad_addresses_are_refused_at_config_validation() {
    let password = fresh_password();
    let base = [
        ("KEYGATE_ALERT_EMAIL_FROM", "alerts@keygate.test"),
        ("KEYGATE_ALERT_EMAIL_TO", "oncall@example.com"),
    ];
    let validate = |url: &str, extra: &[(&str, &str)]| {
        let mut vars = env(&base);
        vars.insert("KEYGATE_ALERT_EMAIL_SMTP_URL".into(), url.into());
        vars.extend(env(extra));
        Config::from_raw(RawConfig::default(), &vars).map(|c| c.alerts)
    };

    let error = validate("smtp://mail.example.com:25?tls=none", &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("setting KEYGATE_ALERT_EMAIL_SMTP_URL:"),
        "{error}"
    );
    assert!(error.contains("unencrypted SMTP"), "{error}");
    assert!(error.contains("allow_insecure"), "{error}");
    // Allowed when said so, and to loopback; smtps:// and smtp:// (STARTTLS)
    // anywhere.
    validate(
        "smtp://mail.example.com:25?tls=none",
        &[("KEYGATE_ALERT_EMAIL_ALLOW_INSECURE", "true")],
    )
    .unwrap();
    validate("smtp://127.0.0.1:25?tls=none", &[]).unwrap();
    validate("smtps://mail.example.com", &[]).unwrap();
    validate("smtp://mail.example.com", &[]).unwrap();

    // Credentials belong in a credential source, never the URL, and are
    // not echoed.
    let url = format!("smtps://keygate:{password}@mail.example.com");
    let error = validate(&url, &[]).unwrap_err().to_string();
    assert!(
        error.contains("must not carry a user or password"),
        "{error}"
    );
    assert!(!error.contains(&password), "{error}");

    // Bad addresses are named with their setting.
    let error = validate(
        "smtps://mail.example.com",
        &[(
            "KEYGATE_ALERT_EMAIL_TO",
            "oncall@example.com, oncall.example.com",
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("setting KEYGATE_ALERT_EMAIL_TO:"),
        "{error}"
    );
    assert!(
        error.contains("'oncall.example.com' is not an email address"),
        "{error}"
    );
    let error = validate(
        "smtps://mail.example.com",
        &[("KEYGATE_ALERT_EMAIL_FROM", "keygate at example")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("setting KEYGATE_ALERT_EMAIL_FROM:"),
        "{error}"
    );

    // The same rules in the file, naming the entry.
    let file = |extra: &str| {
        toml::from_str::<RawConfig>(&format!(
            "[[alerts.email]]\nsmtp_url = \"smtp://10.0.0.7?tls=none\"\nfrom = \"a@keygate.test\"\nto = [\"b@example.com\"]\n{extra}"
        ))
        .unwrap()
    };
    let error = Config::from_raw(file(""), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("setting alerts.email[1]:"), "{error}");
    assert!(error.contains("unencrypted SMTP"), "{error}");
    Config::from_raw(file("allow_insecure = true"), &env(&[])).unwrap();
    // Unknown fields are refused.
    assert!(toml::from_str::<RawConfig>(
        "[[alerts.email]]\nsmtp_url = \"smtps://m.example.com\"\nfrom = \"a@keygate.test\"\nto = [\"b@example.com\"]\nssl = true\n"
    )
    .is_err());
}

#[tokio::test]
async fn the_gateway_emails_alerts_raised_through_its_state() {
    let mut server = SmtpServer::start(&[], "PLAIN").await;
    let vars = email_env(server.port, &[("KEYGATE_ALERT_EMAIL_KINDS", "key.*")]);
    let gw = TestGateway::start_with(
        Backend::Sqlite,
        keygate::mock::MockOptions::default(),
        move |_| (String::new(), vars),
    )
    .await;
    assert_eq!(gw.state.alerts.channels(), ["env-email"]);
    let Raised::Stored { id, deliveries } = gw
        .state
        .alerts
        .raise(rotation_alert("key_gw"))
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(deliveries, 1);
    let session = server.next().await;
    assert!(session.accepted);
    assert_eq!(session.header("X-Keygate-Alert-Id"), id);
    gw.finish().await;
}
