//! The CPU work of a new version, done off the async threads before the
//! insert: sealing the text and, against the previous version, the diff and
//! the per-component change summaries (semantic when both versions parse).

use super::new::NewSnapshot;
use crate::backup::changes::{self, Change};
use crate::backup::semantic;
use crate::store::crypto::Sealed;
use crate::store::record::{content_aad, diff_label};
use crate::store::{Error, Result, Store};
use crate::telemetry::spawn_blocking_with_tracing;

/// The computed parts of a new version, prepared before the insert.
pub(super) struct Prepared {
    pub(super) content: Sealed,
    pub(super) diff_text: Option<String>,
    pub(super) lines_added: u32,
    pub(super) lines_removed: u32,
    pub(super) changes: Vec<Change>,
    /// Differs from its predecessor only in status comments (DESIGN.md §16).
    pub(super) status_only: bool,
    pub(super) size_bytes: i64,
    pub(super) line_count: i64,
}

impl Store {
    /// Seals the new text and, against the previous version, computes the
    /// diff and change summaries, off the async threads.
    pub(super) async fn prepare(
        &self,
        snap: &NewSnapshot,
        previous: Option<(String, Sealed)>,
    ) -> Result<Prepared> {
        let tenant = snap.tenant_id.to_string();
        let device = snap.device_id.to_string();
        let text = snap.config_text.clone();
        let hash = snap.sha256_hash.clone();
        let cipher = self.cipher.clone();
        let deadline = self.diff_deadline;
        spawn_blocking_with_tracing(move || -> Result<Prepared> {
            let content = cipher.seal(&tenant, &content_aad(&device, &hash), text.as_bytes())?;
            let line_count = i64::try_from(text.lines().count()).unwrap_or(i64::MAX);
            let size_bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
            let Some((prev_hash, sealed)) = previous else {
                return Ok(Prepared {
                    content,
                    diff_text: None,
                    lines_added: u32::try_from(line_count).unwrap_or(u32::MAX),
                    lines_removed: 0,
                    changes: Vec::new(),
                    status_only: false,
                    size_bytes,
                    line_count,
                });
            };
            let old = cipher.open(&tenant, &content_aad(&device, &prev_hash), &sealed)?;
            let old = String::from_utf8(old)
                .map_err(|_| Error::Unexpected(anyhow::anyhow!("stored snapshot is not UTF-8")))?;
            let diff = changes::diff(
                &old,
                &text,
                &diff_label(&device, &prev_hash),
                &diff_label(&device, &hash),
                deadline,
            );
            // Status-only is decided on the text alone, so it holds even when
            // a side has lines the semantic parser keeps opaque. Otherwise
            // item-level summaries when both versions parse; line counts per
            // menu when they do not.
            let status_only = semantic::differs_only_in_status(&old, &text);
            let summary = if status_only {
                semantic::status_summary()
            } else {
                semantic::summarize(&old, &text)
                    .unwrap_or_else(|| changes::summarize(&old, &text, deadline))
            };
            Ok(Prepared {
                content,
                diff_text: Some(diff.text),
                lines_added: diff.lines_added,
                lines_removed: diff.lines_removed,
                changes: summary,
                status_only,
                size_bytes,
                line_count,
            })
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("preparing a snapshot")))?
    }
}
