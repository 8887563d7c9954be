//! What a notification says, per kind: the Standard Webhooks JSON body
//! (DESIGN.md §14), the incoming-webhook JSON of Slack, Microsoft Teams
//! (an Adaptive Card) and Discord with the summary and a link, and the
//! plain-text mail. Pure functions over the event's stored data; the diff
//! comes in already redacted (unless the target includes secrets) and cut
//! with [`truncate_diff`].

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::notify::ChatService;

/// Discord refuses `content` longer than this.
const DISCORD_MAX: usize = 2000;

/// The event's one-line summary, e.g.
/// `router 1 (dev-1): configuration changed, +3 -1`.
pub fn summary(event_type: &str, data: &Value) -> String {
    let s = |k: &str| data[k].as_str().unwrap_or("?").to_owned();
    let n = |k: &str| data[k].as_i64().unwrap_or(0);
    let who = format!("{} ({})", s("device_name"), s("device_id"));
    match event_type {
        "config.changed" => format!(
            "{who}: configuration changed, +{} -{}",
            n("lines_added"),
            n("lines_removed")
        ),
        "backup.failed" => format!(
            "{who}: {} backups in a row failed (last error: {})",
            n("consecutive_failures"),
            s("error_kind")
        ),
        "backup.recovered" => format!(
            "{who}: backups succeed again after {} failures",
            n("consecutive_failures")
        ),
        "hostkey.mismatch" => format!(
            "{who}: the SSH host key differs from the pinned one; scheduled backups stopped"
        ),
        "backup.stale" => match data["last_success_at"].as_str() {
            Some(at) => format!("{who}: no successful backup since {at}"),
            None => format!("{who}: no successful backup yet"),
        },
        other => format!("{who}: {other}"),
    }
}

/// The per-component change summaries (`config.changed`), one per line.
fn change_lines(data: &Value) -> Vec<String> {
    data["changes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["component"].as_str().unwrap_or("?"),
                        c["summary"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The link to the device's page, when `[notify] base_url` is set.
pub fn link(base_url: Option<&str>, data: &Value) -> Option<String> {
    let (t, d) = (data["tenant_id"].as_str()?, data["device_id"].as_str()?);
    base_url.map(|b| format!("{b}/ui/t/{t}/devices/{d}"))
}

/// The webhook body: `{"type","timestamp","data":{…, "url"[, "diff"]}}`.
pub fn webhook_body(
    event_type: &str,
    created_ms: i64,
    data: &Value,
    link: Option<&str>,
    diff: Option<&str>,
) -> Value {
    let mut data = data.clone();
    data["url"] = json!(link);
    if let Some(diff) = diff {
        data["diff"] = json!(diff);
    }
    let at = DateTime::<Utc>::from_timestamp_millis(created_ms).unwrap_or_default();
    json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

/// The incoming-webhook body of a chat service.
pub fn chat_body(
    service: ChatService,
    event_type: &str,
    data: &Value,
    link: Option<&str>,
) -> Value {
    let title = summary(event_type, data);
    let changes = change_lines(data);
    match service {
        ChatService::Slack => {
            let mut text = format!("*{}*", escape_slack(&title));
            for c in &changes {
                text.push_str(&format!("\n• {}", escape_slack(c)));
            }
            if let Some(l) = link {
                text.push_str(&format!("\n<{l}|Open in cfgsnap>"));
            }
            json!({ "text": text })
        }
        ChatService::Discord => {
            let mut text = format!("**{title}**");
            for c in &changes {
                text.push_str(&format!("\n- {c}"));
            }
            if let Some(l) = link {
                text.push_str(&format!("\n{l}"));
            }
            json!({ "content": cut(&text, DISCORD_MAX), "allowed_mentions": { "parse": [] } })
        }
        ChatService::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true
            })];
            for c in &changes {
                body.push(json!({ "type": "TextBlock", "text": format!("- {c}"), "wrap": true }));
            }
            let actions: Vec<Value> = link
                .map(|l| json!({ "type": "Action.OpenUrl", "title": "Open in cfgsnap", "url": l }))
                .into_iter()
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                        "actions": actions,
                    }
                }]
            })
        }
    }
}

/// Slack treats `<`, `>` and `&` as markup.
fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The mail's subject and plain-text body.
pub fn email(
    event_type: &str,
    data: &Value,
    link: Option<&str>,
    diff: Option<&str>,
) -> (String, String) {
    let title = summary(event_type, data);
    let mut text = format!("{title}\n\n");
    text.push_str(&format!(
        "Event:  {event_type}\nTenant: {}\nDevice: {}\n",
        data["tenant_id"].as_str().unwrap_or("?"),
        data["device_id"].as_str().unwrap_or("?"),
    ));
    let changes = change_lines(data);
    if !changes.is_empty() {
        text.push_str("\nChanges:\n");
        for c in &changes {
            text.push_str(&format!("  - {c}\n"));
        }
    }
    if let Some(l) = link {
        text.push_str(&format!("\n{l}\n"));
    }
    if let Some(d) = diff {
        text.push('\n');
        text.push_str(d);
    }
    (format!("[cfgsnap] {title}"), text)
}

/// Cuts a diff longer than `max` bytes at the last line boundary before
/// it and says so; shorter diffs are returned as they are.
pub fn truncate_diff(diff: &str, max: usize) -> String {
    if diff.len() <= max {
        return diff.to_owned();
    }
    let head = cut_bytes(diff, max);
    let head = head.rfind('\n').map_or(head, |i| &head[..=i]);
    format!(
        "{head}[diff truncated: {} of {} bytes shown]\n",
        head.len(),
        diff.len()
    )
}

fn cut_bytes(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn cut(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed() -> Value {
        json!({
            "tenant_id": "t1", "device_id": "dev-1", "device_name": "edge <1>",
            "lines_added": 3, "lines_removed": 1,
            "changes": [{"component": "ip/firewall/filter", "summary": "Added 2 firewall filter rules"}],
        })
    }

    #[test]
    fn summaries_name_the_device_and_the_counts() {
        let s = summary("config.changed", &changed());
        assert_eq!(s, "edge <1> (dev-1): configuration changed, +3 -1");
        let failed = json!({"device_name": "r", "device_id": "d", "consecutive_failures": 3, "error_kind": "timeout"});
        assert!(
            summary("backup.failed", &failed)
                .contains("3 backups in a row failed (last error: timeout)")
        );
    }

    #[test]
    fn chat_bodies_carry_summary_changes_and_link() {
        let url = "https://cfgsnap.example/ui/t/t1/devices/dev-1";
        let link = Some(url);
        let slack = chat_body(ChatService::Slack, "config.changed", &changed(), link);
        let text = slack["text"].as_str().expect("text");
        assert!(text.contains("edge &lt;1&gt;"), "{text}");
        assert!(text.contains("Added 2 firewall filter rules"));
        assert!(text.contains("<https://cfgsnap.example/ui/t/t1/devices/dev-1|Open in cfgsnap>"));
        let teams = chat_body(ChatService::Teams, "config.changed", &changed(), link);
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["actions"][0]["url"], url);
        let discord = chat_body(ChatService::Discord, "config.changed", &changed(), link);
        assert!(
            discord["content"]
                .as_str()
                .expect("content")
                .contains("ip/firewall/filter")
        );
    }

    #[test]
    fn long_diffs_are_cut_at_a_line_and_marked() {
        let diff = "+line one\n+line two\n+line three\n";
        let cut = truncate_diff(diff, 15);
        assert!(
            cut.starts_with("+line one\n[diff truncated: 10 of 32 bytes shown]"),
            "{cut}"
        );
        assert_eq!(truncate_diff(diff, 1000), diff);
    }
}
