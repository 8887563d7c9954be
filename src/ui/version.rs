//! One version (`/ui/t/{tid}/devices/{did}/snapshots/{sid}`): the export
//! with line numbers and an anchor per line, menu lines (`/ip address`)
//! marked so they are easy to scan, masked as the API masks it for the
//! caller, with copy (script) and download (the API's `.rsc` download).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::page::{self, Chrome, UiError, render};
use super::time::Stamp;
use crate::api::path::{SnapshotId, SnapshotPath};
use crate::api::{AppState, Role, secrets};

/// One line of the export.
pub struct Line {
    no: usize,
    text: String,
    menu: bool,
    comment: bool,
}

#[derive(Template)]
#[template(path = "version.html")]
struct VersionPage {
    chrome: Chrome,
    tenant: String,
    device: String,
    name: String,
    id: i64,
    previous: Option<i64>,
    at: Stamp,
    hash: String,
    routeros: String,
    masked: bool,
    lines: Vec<Line>,
    download: String,
    raw: String,
}

/// `GET /ui/t/{tid}/devices/{did}/snapshots/{sid}`.
pub async fn version(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let path = SnapshotPath {
        tid: page::tenant_id(&path.0)?,
        did: page::device_id(&path.1)?,
        sid: SnapshotId(page::snapshot_id(&path.2)?),
    };
    caller.require(&path.tid, Role::Viewer)?;
    let shown = secrets::secrets_for(&caller, &state, &path, None).await?;
    let (tid, did, sid) = (path.tid.as_str(), path.did.as_str(), path.sid.0);
    let meta = state.store.get_snapshot(tid, did, sid).await?;
    let text = state.store.snapshot_content(tid, did, sid).await?;
    let text = secrets::apply(text, shown).await?;
    let name = state.device_name(&path.did);
    let api = format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}");
    let page = VersionPage {
        chrome: Chrome::new(
            &req,
            &state,
            Some(&caller),
            Some(&path.tid),
            format!("{name} · version {sid}"),
        )
        .section("fleet"),
        tenant: tid.to_owned(),
        device: did.to_owned(),
        name,
        id: sid,
        previous: meta.previous_snapshot_id,
        at: Stamp::new(meta.collected_at, chrono::Utc::now()),
        hash: meta.sha256_hash,
        routeros: meta.routeros_version.unwrap_or_default(),
        masked: shown == crate::store::history::Secrets::Masked,
        lines: lines(&text),
        download: format!("{api}/download"),
        raw: format!("{api}/content"),
    };
    render(&page)
}

/// The export's lines, numbered from 1, with menu and comment lines marked.
fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .map(|(i, line)| Line {
            no: i + 1,
            menu: line.starts_with('/'),
            comment: line.starts_with('#'),
            text: line.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_menus_marked() {
        let l = lines("# model = x\n/ip address\nadd address=10.0.0.1/24\n");
        assert_eq!(l.len(), 3);
        assert!(l[0].comment && !l[0].menu);
        assert!(l[1].menu && l[1].no == 2);
        assert!(!l[2].menu && l[2].text == "add address=10.0.0.1/24");
    }
}
