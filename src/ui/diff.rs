//! The difference between any two versions of a device
//! (`/ui/t/{tid}/devices/{did}/diff?from=&to=&view=unified|split`): both
//! texts read and masked together as the API masks diffs for the caller,
//! then laid out by `diffview` on the blocking pool, with the semantic
//! diff's item-by-item changes above it. Links lead to the
//! previous and next change, to both versions and to the raw diff.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::diffview::{self, DiffView};
use super::page::{self, Chrome, UiError, render};
use super::time::Stamp;
use crate::api::error::ApiError;
use crate::api::path::{SnapshotId, SnapshotPath};
use crate::api::{AppState, Role, secrets};
use crate::backup::semantic::{self, ChangeKind, SemanticDiff};

/// How long the line diff may refine before it settles for a coarser one.
const DEADLINE: Duration = Duration::from_secs(2);

/// The diff page's query string.
#[derive(Deserialize)]
pub struct DiffQuery {
    /// The older version; the newer one's predecessor when absent.
    from: Option<String>,
    /// The newer version; the newest when absent.
    to: Option<String>,
    /// `split` for side by side; unified otherwise.
    #[serde(default)]
    view: String,
}

/// A version as the diff's header names it.
pub struct End {
    id: i64,
    at: Stamp,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    chrome: Chrome,
    tenant: String,
    device: String,
    name: String,
    from: Option<End>,
    to: End,
    split: bool,
    masked: bool,
    diff: DiffView,
    /// Semantic changes (DESIGN.md §16) listed above the line diff;
    /// `None` (nothing to say) hides the section.
    semantic: Option<Vec<String>>,
    raw: String,
    unified_link: String,
    split_link: String,
}

/// `GET /ui/t/{tid}/devices/{did}/diff`.
pub async fn diff(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let (tid, did) = (page::tenant_id(&path.0)?, page::device_id(&path.1)?);
    caller.require(&tid, Role::Viewer)?;
    let to_id = match query.to.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => page::snapshot_id(s)?,
        None => {
            let newest = state
                .store
                .newest_snapshot(tid.as_str(), did.as_str())
                .await?;
            newest.ok_or(ApiError::SnapshotNotFound)?.id
        }
    };
    let to_meta = state
        .store
        .get_snapshot(tid.as_str(), did.as_str(), to_id)
        .await?;
    let from_id = match query.from.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(page::snapshot_id(s)?),
        None => to_meta.previous_snapshot_id,
    };
    let from_meta = match from_id {
        Some(id) => Some(
            state
                .store
                .get_snapshot(tid.as_str(), did.as_str(), id)
                .await?,
        ),
        None => None,
    };
    let snapshot = SnapshotPath {
        tid: tid.clone(),
        did: did.clone(),
        sid: SnapshotId(to_id),
    };
    let shown = secrets::secrets_for(&caller, &state, &snapshot, None).await?;
    let (old, new) = state
        .store
        .texts_as(tid.as_str(), did.as_str(), (from_id, to_id), shown)
        .await?;
    let (view, semantic) = web::block(move || {
        let semantic = describe(&semantic::diff(&old, &new));
        (diffview::build(&old, &new, DEADLINE), semantic)
    })
    .await
    .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("laying out a diff: {e}")))?;
    let name = state.device_name(&did);
    let now = chrono::Utc::now();
    let base = format!(
        "/ui/t/{tid}/devices/{did}/diff?from={}&to={to_id}",
        from_id.map_or(String::new(), |f| f.to_string())
    );
    let raw = match from_id {
        Some(f) => {
            format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{to_id}/diff?against={f}")
        }
        None => format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{to_id}/diff"),
    };
    let page = DiffPage {
        chrome: Chrome::new(
            &req,
            &state,
            Some(&caller),
            Some(&tid),
            format!("{name} · changes"),
        )
        .section("fleet"),
        tenant: tid.to_string(),
        device: did.to_string(),
        name,
        from: from_meta.map(|m| End {
            id: m.id,
            at: Stamp::new(m.collected_at, now),
        }),
        to: End {
            id: to_meta.id,
            at: Stamp::new(to_meta.collected_at, now),
        },
        split: query.view == "split",
        masked: shown == crate::store::history::Secrets::Masked,
        diff: view,
        semantic,
        raw,
        unified_link: format!("{base}&view=unified"),
        split_link: format!("{base}&view=split"),
    };
    render(&page)
}

/// Semantic changes listed on the page at most.
const MAX_SEMANTIC: usize = 200;
/// Longest property value shown in a semantic change.
const MAX_VALUE: usize = 60;

/// The semantic diff as lines for the page ("Modified /interface ethernet
/// ether1: mtu 1500 → 9000"); `None` when it has nothing to add.
fn describe(diff: &SemanticDiff) -> Option<Vec<String>> {
    if diff.changes.is_empty() {
        return diff
            .status_only
            .then(|| vec!["Only status comments changed (not configuration)".to_owned()]);
    }
    let value = |v: &Option<String>| match v {
        None => "(unset)".to_owned(),
        Some(v) if v.chars().count() > MAX_VALUE => {
            format!("{}…", v.chars().take(MAX_VALUE).collect::<String>())
        }
        Some(v) => v.clone(),
    };
    let mut lines: Vec<String> = diff
        .changes
        .iter()
        .take(MAX_SEMANTIC)
        .map(|c| {
            let what = format!("{} {}", c.menu, c.item);
            match c.kind {
                ChangeKind::Added => format!("Added {what}"),
                ChangeKind::Removed => format!("Removed {what}"),
                ChangeKind::Moved => format!(
                    "Moved {what} from position {} to {}",
                    c.old_index.map_or(0, |i| i + 1),
                    c.new_index.map_or(0, |i| i + 1)
                ),
                ChangeKind::Modified => {
                    let props: Vec<String> = c
                        .properties
                        .iter()
                        .map(|p| format!("{} {} → {}", p.name, value(&p.old), value(&p.new)))
                        .collect();
                    format!("Modified {what}: {}", props.join(", "))
                }
            }
        })
        .collect();
    if diff.changes.len() > MAX_SEMANTIC {
        lines.push(format!("… and {} more", diff.changes.len() - MAX_SEMANTIC));
    }
    Some(lines)
}
