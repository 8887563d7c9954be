//! Configs beyond the server's `max_payload` on NATS ([`ConfigObjects`]):
//! the encoding choice of a snapshot event (plain → gzip inline → object
//! store), fetching and deleting `config_ref` objects, and the bucket
//! itself. Objects are the gzip of the text, named
//! `{tenant_id}/{Nats-Msg-Id}`; ingesters delete them after the ack, the
//! bucket's max age removes any left behind. Knows nothing of the stream.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_nats::jetstream;
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use tokio::io::AsyncReadExt as _;
use tracing::warn;

use crate::bus::codec::{self, MAX_CONFIG_TEXT_BYTES};
use crate::bus::wire::{ConfigRef, ContentEncoding, SnapshotEvent};
use crate::bus::{Error, Result};
use crate::telemetry::spawn_blocking_with_tracing;

/// The object store bucket of configs too large for one event.
pub(crate) struct ConfigObjects {
    store: ObjectStore,
    bucket: String,
}

impl ConfigObjects {
    /// Creates the bucket `bucket` whose objects expire after `max_age`, or
    /// opens it when it exists with another configuration.
    pub(crate) async fn open(
        js: &jetstream::Context,
        bucket: &str,
        max_age: Duration,
    ) -> Result<ConfigObjects> {
        let config = object_store::Config {
            bucket: bucket.to_owned(),
            description: Some("cfgsnap configs too large for one event".into()),
            max_age,
            storage: StorageType::File,
            ..Default::default()
        };
        let store = match js.create_object_store(config).await {
            Ok(store) => store,
            Err(create) => js.get_object_store(bucket).await.map_err(|_| {
                Error::Unavailable(
                    anyhow!(create).context(format!("creating object store {bucket}")),
                )
            })?,
        };
        Ok(ConfigObjects {
            store,
            bucket: bucket.to_owned(),
        })
    }

    /// The event's JSON within `budget` bytes, choosing the encoding.
    pub(crate) async fn encode(
        &self,
        event: &SnapshotEvent,
        msg_id: &str,
        budget: usize,
    ) -> Result<(Vec<u8>, ContentEncoding)> {
        let to_json = |e: &SnapshotEvent| {
            // Sized for the text and its escapes up front: growing from
            // serde_json's 128 bytes copies a 47 KB export about nine times.
            let text = e.config_text.as_ref().map_or(0, String::len);
            let mut json = Vec::with_capacity(text + text / 8 + 1024);
            serde_json::to_writer(&mut json, e).context("serializing an event")?;
            Ok::<_, anyhow::Error>(json)
        };
        let fits = |bytes: &Vec<u8>| bytes.len() <= budget;
        let text = match (event.encoding(), &event.config_text) {
            (Some(ContentEncoding::Plain), Some(text)) => text,
            (Some(encoding), _) => {
                let json = to_json(event)?;
                return if fits(&json) {
                    Ok((json, encoding))
                } else {
                    Err(Error::InvalidEvent(
                        "pre-encoded event exceeds max_payload".into(),
                    ))
                };
            }
            (None, _) => {
                return Err(Error::InvalidEvent(
                    "exactly one of config_text, config_text_gzip, config_ref must be set".into(),
                ));
            }
        };
        if text.len() < budget {
            let json = to_json(event)?;
            if fits(&json) {
                return Ok((json, ContentEncoding::Plain));
            }
        }
        let owned = text.clone();
        let gz = spawn_blocking_with_tracing(move || codec::gzip(owned.as_bytes()))
            .await
            .context("compressing a config")?;
        let mut meta = event.without_content();
        if codec::base64_len(gz.len()) < budget {
            meta.config_text_gzip = Some(codec::to_base64(&gz));
            let json = to_json(&meta)?;
            if fits(&json) {
                return Ok((json, ContentEncoding::Gzip));
            }
            meta.config_text_gzip = None;
        }
        let name = format!("{}/{msg_id}", event.tenant_id);
        self.store
            .put(name.as_str(), &mut gz.as_slice())
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("storing a large config object")))?;
        meta.config_ref = Some(ConfigRef {
            bucket: self.bucket.clone(),
            name,
            size: gz.len() as u64,
            encoding: "gzip".into(),
        });
        let json = to_json(&meta)?;
        if !fits(&json) {
            return Err(Error::InvalidEvent(
                "event metadata exceeds max_payload".into(),
            ));
        }
        Ok((json, ContentEncoding::ObjectStore))
    }

    /// The text behind a `config_ref`. `Ok(Err(reason))` when the reference
    /// can never resolve (poison), `Err` when NATS failed (retry).
    pub(crate) async fn fetch_config(
        &self,
        reference: &ConfigRef,
    ) -> Result<std::result::Result<String, String>> {
        if reference.bucket != self.bucket {
            return Ok(Err(format!(
                "config_ref names unknown bucket {:?}",
                reference.bucket
            )));
        }
        if reference.encoding != "gzip" {
            return Ok(Err("config_ref encoding is not gzip".into()));
        }
        if reference.size > MAX_CONFIG_TEXT_BYTES as u64 {
            return Ok(Err("config_ref object is too large".into()));
        }
        let mut object = match self.store.get(reference.name.as_str()).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                return Ok(Err(
                    "config_ref object not found (expired or deleted)".into()
                ));
            }
            Err(e) => {
                return Err(Error::Unavailable(
                    anyhow!(e).context("fetching a config object"),
                ));
            }
        };
        let mut gz = Vec::with_capacity(usize::try_from(reference.size).unwrap_or(0));
        (&mut object)
            .take(MAX_CONFIG_TEXT_BYTES as u64)
            .read_to_end(&mut gz)
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("reading a config object")))?;
        let text = spawn_blocking_with_tracing(move || codec::gunzip(&gz))
            .await
            .context("decompressing a config object")?;
        Ok(text)
    }

    /// Deletes a config object once its event is acknowledged; best effort
    /// (the bucket's max age removes what is left).
    pub(crate) async fn delete_config(&self, reference: &ConfigRef) {
        if let Err(e) = self.store.delete(reference.name.as_str()).await {
            warn!(error.message = %e, object = %reference.name, "deleting a config object failed");
        }
    }
}
