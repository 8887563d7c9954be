//! The search page (`/ui/t/{tid}/search?q=&regex=&ignore_case=&scope=&device=`,
//! DESIGN.md §15): the same `Searcher` as the API, with the caller's
//! secrets masked as the API masks them; hits grouped by device, each
//! linking to its version at the line (current) or to the versions where
//! the line came and went (history). Pages continue with the cursor.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::fleet::encode;
use super::page::{self, Chrome, UiError, render};
use crate::api::error::ApiError;
use crate::api::{AppState, Role, secrets};
use crate::search::{self, Items, Request, Scope};
use crate::store::history::Secrets;

/// The search page's query string (what the form sends).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    regex: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ignore_case: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// One hit as shown.
pub struct Hit {
    /// Link to the line (current) or the version that added it (history).
    href: String,
    /// `line 12`, or `+#41 … −#57` for a line's life.
    place: String,
    line: String,
    before: Vec<String>,
    after: Vec<String>,
}

/// The hits of one device.
pub struct Group {
    device: String,
    hits: Vec<Hit>,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    tenant: String,
    query: SearchQuery,
    history: bool,
    masked: bool,
    error: Option<String>,
    groups: Vec<Group>,
    searched: bool,
    partial: bool,
    next: Option<String>,
}

/// `GET /ui/t/{tid}/search`.
pub async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&path)?;
    caller.require(&tenant, Role::Viewer)?;
    let query = query.into_inner();
    let history = query.scope == "history";
    let secrets = secrets::unrevealed(&caller, &state);
    let mut page = SearchPage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), "Search").section("search"),
        tenant: tenant.to_string(),
        query: query.clone(),
        history,
        masked: secrets == Secrets::Masked,
        error: None,
        groups: Vec::new(),
        searched: !query.q.is_empty(),
        partial: false,
        next: None,
    };
    if query.q.is_empty() {
        return render(&page);
    }
    let request = Request {
        q: query.q.clone(),
        regex: query.regex == "true",
        ignore_case: query.ignore_case == "true",
        scope: if history {
            Scope::History
        } else {
            Scope::Current
        },
        device: Some(query.device.clone()).filter(|d| !d.is_empty()),
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
        ..Request::default()
    };
    let parsed = match search::Query::parse(&request) {
        Ok(parsed) => parsed,
        Err(search::Error::BadQuery(detail)) => {
            page.error = Some(detail);
            return render(&page);
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let found = state
        .searcher
        .search(tenant.as_str(), &parsed, secrets)
        .await
        .map_err(ApiError::from)?;
    page.groups = groups(tenant.as_str(), found.items);
    page.partial = found.partial;
    page.next = found.next_cursor.map(|cursor| {
        let next = SearchQuery {
            cursor: Some(cursor),
            ..query
        };
        format!("?{}", encode(&next))
    });
    render(&page)
}

/// Hits grouped by device, in the order found (devices by id).
fn groups(tenant: &str, items: Items) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut push = |device: String, hit: Hit| match out.last_mut() {
        Some(g) if g.device == device => g.hits.push(hit),
        _ => out.push(Group {
            device,
            hits: vec![hit],
        }),
    };
    match items {
        Items::Current(hits) => {
            for h in hits {
                let href = format!(
                    "/ui/t/{tenant}/devices/{}/snapshots/{}#L{}",
                    h.device_id, h.snapshot_id, h.line_no
                );
                let hit = Hit {
                    href,
                    place: format!("line {}", h.line_no),
                    line: h.line,
                    before: h.before,
                    after: h.after,
                };
                push(h.device_id, hit);
            }
        }
        Items::History(lives) => {
            for l in lives {
                let day = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC");
                let added = format!(
                    "{} #{} ({})",
                    if l.added_earlier {
                        "there by"
                    } else {
                        "added in"
                    },
                    l.added_in.snapshot_id,
                    day(l.added_in.collected_at)
                );
                let removed = l.removed_in.map_or_else(
                    || "still present".to_owned(),
                    |r| format!("removed in #{} ({})", r.snapshot_id, day(r.collected_at)),
                );
                let href = format!(
                    "/ui/t/{tenant}/devices/{}/snapshots/{}",
                    l.device_id, l.added_in.snapshot_id
                );
                let hit = Hit {
                    href,
                    place: format!("{added}, {removed}"),
                    line: l.line,
                    before: Vec::new(),
                    after: Vec::new(),
                };
                push(l.device_id, hit);
            }
        }
    }
    out
}
