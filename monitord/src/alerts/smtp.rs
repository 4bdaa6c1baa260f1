//! One SMTP session with `<smtp>`'s server through `mail-send`: connecting with the chosen
//! security (none, STARTTLS, implicit TLS), trusting `ca-file` in addition to the system's
//! roots (verification is never turned off), optional authentication, and delivering one
//! message to one recipient with a verdict the outbox can act on.
//!
//! Not here: which rows to send or when to retry (see [`super::sender`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_send::mail_builder::MessageBuilder;
use mail_send::mail_builder::headers::date::Date;
use mail_send::smtp::message::Message;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use monitor_core::config::{Security, Smtp};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long one SMTP exchange may take before it counts as a temporary failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a delivery did not happen, sorted by what the outbox does about it.
///
/// Only a refusal that names this one mail is final. A server that refuses the session or
/// our sender would refuse every mail the same way: that is `<smtp>` being wrong, which the
/// operator can fix, so those mails wait instead of being thrown away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A 5xx to `RCPT` (this recipient) or to the message itself (`DATA`): retrying cannot
    /// help this row.
    #[error("{0}")]
    Refused(String),
    /// A 5xx to the greeting, `EHLO`, `AUTH` or `MAIL FROM`, a refused login, a missing
    /// STARTTLS, an unreadable password: the mail settings are wrong for every row.
    #[error("{0}")]
    Setup(String),
    /// Anything else (no connection, TLS, 4xx, timeout): try again later.
    #[error("{0}")]
    Temporary(String),
}

impl DeliveryError {
    /// Final for the row: retrying cannot help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, DeliveryError::Refused(_))
    }

    /// The mail settings are wrong: every row fails the same way until `<smtp>` is fixed.
    pub fn is_setup(&self) -> bool {
        matches!(self, DeliveryError::Setup(_))
    }
}

/// The SMTP exchange a reply answered; it decides whom a 5xx is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Greeting, EHLO, STARTTLS, AUTH.
    Session,
    MailFrom,
    RcptTo,
    Data,
}

/// A message ready to go: headers are fixed by the caller (Date and Message-ID from the
/// outbox row), so a retry sends the same mail.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub created_ms: i64,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// `<smtp from>`, else `monitord@<host name>`.
pub fn from_address(smtp: &Smtp, host: &str) -> String {
    smtp.from
        .clone()
        .unwrap_or_else(|| format!("monitord@{host}"))
}

/// An open session; a failed delivery may leave it unusable, see [`Session::is_broken`].
#[derive(Debug)]
pub struct Session {
    conn: Conn,
    from: String,
    broken: bool,
}

enum Conn {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

impl Session {
    /// Connects, negotiates TLS as configured and authenticates.
    pub async fn connect(smtp: &Smtp, from: String) -> Result<Session, DeliveryError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| {
            DeliveryError::Setup(format!(
                "SMTP server {}:{}: {what}: {e}",
                smtp.host, smtp.port
            ))
        };
        let connector = TLS.get(smtp).map_err(|e| setup("cannot set up TLS", &e))?;
        let mut builder =
            SmtpClientBuilder::new_with_tls_connector(smtp.host.clone(), smtp.port, connector)
                .implicit_tls(smtp.security == Security::Tls)
                .timeout(SMTP_TIMEOUT);
        if let Some(username) = &smtp.username {
            let secret = password(smtp).map_err(|e| setup("cannot read the password", &e))?;
            builder = builder.credentials(Credentials::new(username.clone(), secret));
        }
        // mail-send bounds only parts of a plain connection by its timeout; a server that
        // accepts and then says nothing must not hold the outbox forever.
        let connecting = async {
            match smtp.security {
                Security::None => builder.connect_plain().await.map(Conn::Plain),
                Security::StartTls | Security::Tls => {
                    builder.connect().await.map(|c| Conn::Tls(Box::new(c)))
                }
            }
        };
        let conn = tokio::time::timeout(SMTP_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                DeliveryError::Temporary(format!(
                    "SMTP server {}:{}: no answer after {SMTP_TIMEOUT:?}",
                    smtp.host, smtp.port
                ))
            })?
            .map_err(|e| {
                let context = format!("SMTP server {}:{}", smtp.host, smtp.port);
                classify(&context, Stage::Session, e)
            })?;
        Ok(Session {
            conn,
            from,
            broken: false,
        })
    }

    /// Whether the connection must be replaced before the next delivery.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends one message to one recipient.
    pub async fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError> {
        let bytes = render(&self.from, mail)
            .map_err(|e| DeliveryError::Refused(format!("cannot build the message: {e}")))?;
        let message = Message::new(self.from.as_str(), [mail.to], Cow::Owned(bytes));
        let sending = async {
            match &mut self.conn {
                Conn::Plain(c) => send(c, message).await,
                Conn::Tls(c) => send(c.as_mut(), message).await,
            }
        };
        let result = tokio::time::timeout(SMTP_TIMEOUT, sending)
            .await
            .unwrap_or_else(|_| {
                let e = format!("SMTP server: no answer after {SMTP_TIMEOUT:?}");
                Err((DeliveryError::Temporary(e), false))
            });
        if let Err((error, reusable)) = result {
            self.broken = !reusable;
            return Err(error);
        }
        Ok(())
    }

    pub async fn quit(self) {
        let _ = match self.conn {
            Conn::Plain(c) => c.quit().await,
            Conn::Tls(c) => c.quit().await,
        };
    }
}

/// Sends one transaction step by step, so a refusal is pinned on what it refused, and after
/// a refused transaction resets it so the session can carry the next one. The error's flag
/// says whether the session is still usable.
async fn send<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    message: Message<'_>,
) -> Result<(), (DeliveryError, bool)> {
    let steps = async {
        let from = &message.mail_from;
        client
            .mail_from(&from.email, &from.parameters)
            .await
            .map_err(|e| (Stage::MailFrom, e))?;
        for rcpt in &message.rcpt_to {
            client
                .rcpt_to(&rcpt.email, &rcpt.parameters)
                .await
                .map_err(|e| (Stage::RcptTo, e))?;
        }
        client
            .data(message.body.as_ref())
            .await
            .map_err(|e| (Stage::Data, e))
    };
    match steps.await {
        Ok(_) => Ok(()),
        Err((stage, e)) => {
            let replied = matches!(e, mail_send::Error::UnexpectedReply(_));
            let error = classify("SMTP server", stage, e);
            let reusable = replied && client.rset().await.is_ok();
            Err((error, reusable))
        }
    }
}

/// A 5xx is final for what it answered: the recipient or the message ([`DeliveryError::Refused`]),
/// or the session and our sender ([`DeliveryError::Setup`]); everything else may pass.
fn classify(context: &str, stage: Stage, e: mail_send::Error) -> DeliveryError {
    match e {
        mail_send::Error::UnexpectedReply(reply) if reply.code() >= 500 => {
            let said = format!("{} {}", reply.code(), reply.message().trim());
            match stage {
                Stage::RcptTo => {
                    DeliveryError::Refused(format!("{context} refused the recipient: {said}"))
                }
                Stage::Data => {
                    DeliveryError::Refused(format!("{context} refused the message: {said}"))
                }
                Stage::MailFrom => DeliveryError::Setup(format!(
                    "{context} refused our sender: {said} (check <smtp from>, and whether \
                     the server wants <smtp username> and a password)"
                )),
                Stage::Session => DeliveryError::Setup(format!(
                    "{context} refused the session: {said} (check <smtp host>, <smtp port> \
                     and <smtp security>)"
                )),
            }
        }
        mail_send::Error::UnexpectedReply(reply) => DeliveryError::Temporary(format!(
            "{context} deferred it: {} {}",
            reply.code(),
            reply.message().trim()
        )),
        mail_send::Error::AuthenticationFailed(reply) if reply.code() < 500 => {
            DeliveryError::Temporary(format!(
                "{context} could not check the login now: {} {}",
                reply.code(),
                reply.message().trim()
            ))
        }
        mail_send::Error::AuthenticationFailed(reply) => DeliveryError::Setup(format!(
            "{context} refused the login: {} {} (check <smtp username> and the password)",
            reply.code(),
            reply.message().trim()
        )),
        mail_send::Error::MissingStartTls => DeliveryError::Setup(format!(
            "{context} does not offer STARTTLS (check <smtp security>)"
        )),
        other => DeliveryError::Temporary(format!("{context}: {other}")),
    }
}

/// The message as it goes on the wire, with the outbox row's fixed Date and Message-ID.
fn render(from: &str, mail: &Outgoing<'_>) -> std::io::Result<Vec<u8>> {
    let id = mail
        .message_id
        .trim_start_matches('<')
        .trim_end_matches('>');
    MessageBuilder::new()
        .from(from)
        .to(mail.to)
        .subject(mail.subject)
        .message_id(id)
        .date(Date::new(mail.created_ms.div_euclid(1000)))
        .header(
            "Auto-Submitted",
            mail_send::mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(mail.body)
        .write_to_vec()
}

/// TLS settings are built once per (security, ca-file): reading and parsing the system's
/// roots takes long enough to show in the breach-to-mail latency.
static TLS: TlsCache = TlsCache(Mutex::new(None));

struct TlsCache(Mutex<Option<(Security, Option<PathBuf>, TlsConnector)>>);

impl TlsCache {
    fn get(&self, smtp: &Smtp) -> Result<TlsConnector, String> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((security, ca, connector)) = cached.as_ref() {
            if *security == smtp.security && *ca == smtp.ca_file {
                return Ok(connector.clone());
            }
        }
        let connector = match smtp.security {
            // mail-send wants a connector even for plain SMTP; it is never used.
            Security::None => unused_connector(),
            Security::StartTls | Security::Tls => tls_connector(smtp.ca_file.as_deref())?,
        };
        *cached = Some((smtp.security, smtp.ca_file.clone(), connector.clone()));
        Ok(connector)
    }
}

/// Builds the TLS settings ahead of the first mail, and reports a bad `ca-file` at start.
pub fn prepare_tls(smtp: &Smtp) {
    if let Err(e) = TLS.get(smtp) {
        tracing::error!("alert mail over TLS will fail until this is fixed: {e}");
    }
}

fn unused_connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// System roots plus `ca-file`'s certificates, through the platform verifier.
fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra: Vec<CertificateDer<'static>> = match ca_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("ca-file {}: {e}", path.display()))?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("{e} (install ca-certificates, or set <smtp ca-file>)"))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `password-file` (first line) wins over `password`.
fn password(smtp: &Smtp) -> Result<String, String> {
    if let Some(path) = &smtp.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("password-file {}: {e}", path.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    Ok(smtp
        .password
        .as_ref()
        .map(|p| p.expose().to_owned())
        .unwrap_or_default())
}
