//! The semantic diff response of `GET …/config-snapshots/{sid}/diff?format=semantic`
//! (DESIGN.md §16): the `format` parameter, the JSON DTOs and their
//! mapping from `backup::semantic`. The handler is `history::snapshot_diff`.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::backup::semantic::{ItemChange, PropertyChange, SemanticDiff};

/// What `?format=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// A unified diff, `text/x-diff` (the default).
    Unified,
    /// The §16 JSON document.
    Semantic,
}

impl DiffFormat {
    /// Reads `?format=`: absent or `unified`, or `semantic`.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] (`bad_query`) for any other value.
    pub fn parse(format: Option<&str>) -> Result<Self, ApiError> {
        match format {
            None | Some("unified") => Ok(DiffFormat::Unified),
            Some("semantic") => Ok(DiffFormat::Semantic),
            Some(_) => Err(ApiError::BadRequest {
                code: "bad_query",
                detail: "format must be `unified` or `semantic`".to_owned(),
            }),
        }
    }
}

/// What changed between two snapshots, item by item.
#[derive(Debug, Serialize, ToSchema)]
pub struct SemanticDiffResponse {
    /// The changed items, menu by menu in the order of the newer snapshot.
    pub changes: Vec<ItemChangeResponse>,
    /// `true` when the snapshots differ only in what is not configuration
    /// (status comments such as `# inactive time`).
    pub status_only: bool,
}

/// One changed item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemChangeResponse {
    /// Menu path, e.g. `/interface ethernet`.
    pub menu: String,
    /// The item: its name, `[ find … ]` key, menu keys, comment, or the
    /// menu's last word for settings menus.
    pub item: String,
    /// `added`, `removed`, `modified` or `moved` (ordered menus only).
    #[schema(example = "modified")]
    pub kind: String,
    /// Changed properties; all of them for added and removed items.
    pub properties: Vec<PropertyChangeResponse>,
    /// Position in its menu in the older snapshot (0-based).
    pub old_index: Option<usize>,
    /// Position in its menu in the newer snapshot (0-based).
    pub new_index: Option<usize>,
}

/// One changed property.
#[derive(Debug, Serialize, ToSchema)]
pub struct PropertyChangeResponse {
    /// Property name, e.g. `mtu`.
    pub name: String,
    /// Old value; `null` when unset. Secrets read `********` below the
    /// reveal role.
    pub old: Option<String>,
    /// New value; `null` when unset. A changed secret reads
    /// `******** (changed)` below the reveal role.
    pub new: Option<String>,
}

impl From<SemanticDiff> for SemanticDiffResponse {
    fn from(d: SemanticDiff) -> Self {
        Self {
            changes: d.changes.into_iter().map(Into::into).collect(),
            status_only: d.status_only,
        }
    }
}

impl From<ItemChange> for ItemChangeResponse {
    fn from(c: ItemChange) -> Self {
        Self {
            kind: c.kind.as_str().to_owned(),
            menu: c.menu,
            item: c.item,
            properties: c.properties.into_iter().map(Into::into).collect(),
            old_index: c.old_index,
            new_index: c.new_index,
        }
    }
}

impl From<PropertyChange> for PropertyChangeResponse {
    fn from(p: PropertyChange) -> Self {
        Self {
            name: p.name,
            old: p.old,
            new: p.new,
        }
    }
}

/// The JSON response, `Cache-Control: no-store` like all config text.
pub fn response(diff: SemanticDiff) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(SemanticDiffResponse::from(diff))
}
