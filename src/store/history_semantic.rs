//! Semantic diffs of stored snapshots (DESIGN.md §16): both versions
//! decrypted, compared item by item off the async threads, and masked as
//! [`Secrets`] says. Entry point: [`Store::semantic_diff_as`].

use tracing::instrument;

use super::Secrets;
use crate::backup::semantic::{self, SemanticDiff};
use crate::store::{Error, Result, Store};
use crate::telemetry::spawn_blocking_with_tracing;

impl Store {
    /// The semantic diff of `snapshot_id` against `against`, or against its
    /// predecessor when `None` (an empty export for the device's first
    /// snapshot). With [`Secrets::Masked`] sensitive values are masked and a
    /// changed secret still shows as changed.
    ///
    /// # Errors
    /// [`Error::SnapshotNotFound`] when either snapshot is not this tenant's
    /// and device's; [`Error::Crypto`] when one cannot be decrypted.
    #[instrument(name = "store.semantic_diff", skip_all, fields(device_id = %device_id))]
    pub async fn semantic_diff_as(
        &self,
        tenant_id: &str,
        device_id: &str,
        (snapshot_id, against): (i64, Option<i64>),
        secrets: Secrets,
    ) -> Result<SemanticDiff> {
        let new = self
            .sealed_content(tenant_id, device_id, snapshot_id)
            .await?;
        let against = match against {
            Some(id) => Some(id),
            None => self.previous_id(tenant_id, device_id, snapshot_id).await?,
        };
        let old_text = match against {
            Some(id) => {
                let old = self.sealed_content(tenant_id, device_id, id).await?;
                self.open_content(tenant_id, device_id, old).await?
            }
            None => String::new(),
        };
        let new_text = self.open_content(tenant_id, device_id, new).await?;
        spawn_blocking_with_tracing(move || {
            let mut diff = semantic::diff(&old_text, &new_text);
            if secrets == Secrets::Masked {
                diff.redact();
            }
            diff
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("computing a semantic diff")))
    }
}
