//! Mail delivery through `lettre`: SMTP with STARTTLS, implicit TLS or
//! none, an optional login, a time limit, and the server checked by the
//! SSRF guard first. Certificates are checked against the public roots and
//! the CAs of the target's `smtp_ca_file`. The `Message-ID` is derived from
//! the `webhook-id`, so a retried mail carries the same one.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use super::guard::Guard;
use crate::config::notify::{EmailEndpoint, SmtpTls};

/// One mail to send.
pub struct Mail<'a> {
    /// The row's `webhook-id`, the `Message-ID`'s local part.
    pub id: &'a str,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Sends `mail` to the endpoint's recipients.
///
/// # Errors
/// A refused server (SSRF guard), a bad address, or the SMTP failure, as
/// text without secrets.
pub async fn send(
    ep: &EmailEndpoint,
    guard: &Guard,
    mail: Mail<'_>,
    timeout: Duration,
) -> Result<(), String> {
    guard
        .resolve(&ep.host, ep.port)
        .await
        .map_err(|e| e.to_string())?;
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&ep.host);
    let builder = match tls(ep)? {
        Some(tls) => builder.tls(tls),
        None => builder,
    };
    let mut builder = builder.port(ep.port).timeout(Some(timeout));
    if let Some((user, password)) = &ep.login {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    let mailer = builder.build();
    let message = build(ep, mail)?;
    mailer
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}

/// The TLS of the connection: certificates checked against the public
/// roots plus the target's `smtp_ca_file`, for the name in `smtp_host`.
/// STARTTLS is required, never opportunistic: a server that does not offer
/// it gets neither the login nor the mail.
fn tls(ep: &EmailEndpoint) -> Result<Option<Tls>, String> {
    if ep.tls == SmtpTls::None {
        return Ok(None);
    }
    let mut params = TlsParameters::builder(ep.host.clone());
    if let Some(pem) = &ep.ca_pem {
        let ca = Certificate::from_pem(pem).map_err(|e| format!("smtp_ca_file: {e}"))?;
        params = params.add_root_certificate(ca);
    }
    let params = params.build().map_err(|e| format!("smtp: {e}"))?;
    Ok(Some(match ep.tls {
        SmtpTls::Tls => Tls::Wrapper(params),
        SmtpTls::StartTls | SmtpTls::None => Tls::Required(params),
    }))
}

fn build(ep: &EmailEndpoint, mail: Mail<'_>) -> Result<Message, String> {
    let bad = |e: lettre::address::AddressError| format!("email address: {e}");
    let mut m = Message::builder()
        .from(ep.from.parse().map_err(bad)?)
        .subject(mail.subject)
        .message_id(Some(format!("<{}@cfgsnap>", mail.id)))
        .header(ContentType::TEXT_PLAIN);
    for to in &ep.to {
        m = m.to(to.parse().map_err(bad)?);
    }
    m.body(mail.body)
        .map_err(|e| format!("building the mail: {e}"))
}
