//! One delivery attempt of one claimed outbox row: find its target, render
//! the body for the target's kind (with the diff, redacted unless the
//! target includes secrets), send it, and turn the answer into the row's
//! [`Outcome`]: 2xx delivered; 410 Gone failed and the target disabled until
//! reload; anything else retried with exponential backoff and jitter until
//! `retry_for` has passed since the event, then failed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use rand::Rng as _;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use tracing::{info, warn};

use super::email::{self, Mail};
use super::format;
use super::guard::Guard;
use super::sign;
use crate::config::notify::{Endpoint, NotifyConfig, NotifyOptions, Target};
use crate::store::Store;
use crate::store::audit::Action;
use crate::store::history::Secrets;
use crate::store::outbox::{Claimed, Outcome};

/// A disabled target's rows are looked at again after this many poll
/// intervals (a reload may have enabled the target).
const DISABLED_RECHECK_POLLS: u32 = 20;

/// What deliveries share until the next reload.
pub(super) struct Ctx {
    pub(super) store: Store,
    pub(super) config: Arc<NotifyConfig>,
    pub(super) http: reqwest::Client,
    pub(super) guard: Guard,
    /// Targets that answered 410 Gone since the last reload.
    pub(super) disabled: Mutex<HashSet<String>>,
}

impl Ctx {
    /// A context for `config`: its guard and an HTTP client that resolves
    /// through it, follows no redirects, uses no proxy and gives up after
    /// `timeout`.
    pub(super) fn new(store: Store, config: Arc<NotifyConfig>) -> anyhow::Result<Ctx> {
        let guard = Guard::new(&config.options.allow_hosts);
        let http = reqwest::Client::builder()
            .timeout(config.options.timeout)
            .connect_timeout(config.options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(guard.clone()))
            .user_agent(concat!("cfgsnap/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Ctx {
            store,
            config,
            http,
            guard,
            disabled: Mutex::new(HashSet::new()),
        })
    }

    /// The kind of a target, for metrics (`unknown` once removed).
    pub(super) fn kind_of(&self, target: &str) -> &'static str {
        match self.config.targets.iter().find(|t| t.name == target) {
            Some(t) => match &t.endpoint {
                Endpoint::Webhook { .. } => "webhook",
                Endpoint::Chat { service, .. } => match service {
                    crate::config::notify::ChatService::Slack => "slack",
                    crate::config::notify::ChatService::Teams => "teams",
                    crate::config::notify::ChatService::Discord => "discord",
                },
                Endpoint::Email(_) => "email",
            },
            None => "unknown",
        }
    }

    fn is_disabled(&self, target: &str) -> bool {
        self.disabled
            .lock()
            .map(|d| d.contains(target))
            .unwrap_or(false)
    }

    fn disable(&self, target: &str) {
        if let Ok(mut d) = self.disabled.lock() {
            d.insert(target.to_owned());
        }
    }
}

/// What one attempt ended with, before retry policy.
enum Sent {
    Ok,
    Gone,
    Err(String),
}

/// Delivers `row` once and says what to record.
pub(super) async fn deliver(ctx: &Ctx, row: &Claimed) -> Outcome {
    let Some(target) = ctx.config.targets.iter().find(|t| t.name == row.target) else {
        return Outcome::Failed {
            error: format!("target {} is no longer configured", row.target),
            action: Action::NotificationFailed,
        };
    };
    if ctx.is_disabled(&target.name) {
        let wait = ctx.config.options.poll_interval * DISABLED_RECHECK_POLLS;
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        return Outcome::Defer {
            next_ms: Utc::now().timestamp_millis().saturating_add(wait_ms),
        };
    }
    // The clients' own timeouts bound each connect, read and write, not a
    // whole attempt (a TLS handshake that stalls, a server that answers a
    // byte a second): one attempt gets twice `timeout`, inside its lease.
    let bound = ctx.config.options.timeout * 2;
    let sent = match tokio::time::timeout(bound, send(ctx, target, row)).await {
        Ok(Ok(sent)) => sent,
        Ok(Err(e)) => Sent::Err(e),
        Err(_) => Sent::Err(format!(
            "no complete answer within {}",
            humantime::format_duration(bound)
        )),
    };
    match sent {
        Sent::Ok => Outcome::Delivered,
        Sent::Gone => {
            ctx.disable(&target.name);
            warn!(target = %target.name, "target answered 410 Gone: disabled until the next reload");
            Outcome::Failed {
                error: "410 Gone: target disabled until the next reload".to_owned(),
                action: Action::NotificationTargetDisabled,
            }
        }
        Sent::Err(error) => retry_or_fail(&ctx.config.options, row, error),
    }
}

/// Backs off exponentially with jitter, or gives up once `retry_for` has
/// passed since the event was queued.
fn retry_or_fail(options: &NotifyOptions, row: &Claimed, error: String) -> Outcome {
    let now = Utc::now().timestamp_millis();
    let retry_for = i64::try_from(options.retry_for.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(row.created_ms) >= retry_for {
        return Outcome::Failed {
            error,
            action: Action::NotificationFailed,
        };
    }
    info!(target = %row.target, webhook_id = %row.webhook_id, attempt = row.attempts + 1, error = %error, "delivery failed; retrying");
    Outcome::Retry {
        next_ms: now + backoff_ms(options, row.attempts),
        error,
    }
}

/// `retry_initial × 2^attempts`, at most `retry_max`, times a random factor
/// in [0.5, 1) so that many failed rows do not retry in lockstep.
pub(super) fn backoff_ms(options: &NotifyOptions, attempts: i32) -> i64 {
    let initial = options.retry_initial.as_millis() as f64;
    let max = options.retry_max.as_millis() as f64;
    let exp = initial * 2f64.powi(attempts.clamp(0, 30));
    let jitter = rand::thread_rng().gen_range(0.5..1.0);
    (exp.min(max) * jitter) as i64
}

async fn send(ctx: &Ctx, target: &Target, row: &Claimed) -> Result<Sent, String> {
    let data: Value =
        serde_json::from_str(&row.payload).map_err(|e| format!("stored payload: {e}"))?;
    let options = &ctx.config.options;
    let link = format::link(options.base_url.as_deref(), &data);
    let diff = diff(ctx, target, row, &data).await?;
    match &target.endpoint {
        Endpoint::Webhook { url, keys } => {
            let body = format::webhook_body(
                &row.event_type,
                row.created_ms,
                &data,
                link.as_deref(),
                diff.as_deref(),
            );
            let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let ts = Utc::now().timestamp();
            let signature = sign::signature(keys, &row.webhook_id, ts, &body);
            let request = ctx
                .http
                .post(url.expose_secret())
                .header("content-type", "application/json")
                .header("webhook-id", &row.webhook_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(body);
            post(ctx, url.expose_secret(), request).await
        }
        Endpoint::Chat { service, url } => {
            let body = format::chat_body(*service, &row.event_type, &data, link.as_deref());
            let request = ctx.http.post(url.expose_secret()).json(&body);
            post(ctx, url.expose_secret(), request).await
        }
        Endpoint::Email(ep) => {
            let (subject, body) =
                format::email(&row.event_type, &data, link.as_deref(), diff.as_deref());
            let mail = Mail {
                id: &row.webhook_id,
                subject,
                body,
            };
            email::send(ep, &ctx.guard, mail, options.timeout).await?;
            Ok(Sent::Ok)
        }
    }
}

/// Sends an HTTP request after the literal-address check; the error text
/// never holds the URL (chat URLs carry tokens).
async fn post(ctx: &Ctx, url: &str, request: reqwest::RequestBuilder) -> Result<Sent, String> {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    ctx.guard.check_literal(&host).map_err(|e| e.to_string())?;
    let response = request
        .send()
        .await
        .map_err(|e| describe(&e.without_url()))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(Sent::Ok),
        410 => Ok(Sent::Gone),
        300..=399 => Err(format!("HTTP {status}: redirects are not followed")),
        _ => Err(format!("HTTP {status}")),
    }
}

/// The error and its causes on one line (the guard's refusal is a cause).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The diff of a `config.changed` for a target with `include_diff`:
/// redacted unless it includes secrets, cut at `max_diff_bytes`.
async fn diff(
    ctx: &Ctx,
    target: &Target,
    row: &Claimed,
    data: &Value,
) -> Result<Option<String>, String> {
    if !target.include_diff || row.event_type != "config.changed" {
        return Ok(None);
    }
    let Some(snapshot_id) = data["snapshot_id"].as_i64() else {
        return Ok(None);
    };
    let secrets = match target.include_secrets {
        true => Secrets::Shown,
        false => Secrets::Masked,
    };
    let text = ctx
        .store
        .diff_as(&row.tenant_id, &row.device_id, (snapshot_id, None), secrets)
        .await
        .map_err(|e| format!("reading the diff: {e}"))?;
    Ok(Some(format::truncate_diff(
        &text,
        ctx.config.options.max_diff_bytes,
    )))
}
