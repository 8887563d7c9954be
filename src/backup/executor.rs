//! `SshExecutor`: the [`Executor`] that backs a device up over SSH.
//!
//! One run: pinned key → connect and log in → pin on first use, alongside
//! (version probe) → export → validate → normalize → hash, all inside the hard
//! `job_timelimit`. Later steps of the pipeline (the per-device lock before,
//! the publish after) wrap [`SshExecutor::collect`].

use std::time::Instant;

use chrono::Utc;
use tracing::{info, instrument, warn};

use super::normalize::{normalize, sha256_hex};
use super::ssh::{self, Connection};
use super::validate::validate;
use super::{Command, Device, Error, Executor, HostKeys, Limits, Outcome, Result, Trigger};
use crate::telemetry::spawn_blocking_with_tracing;

/// The RouterOS command that prints the version, e.g. `7.16 (stable)`.
pub const VERSION_PROBE: &str = ":put [/system resource get version]";

/// Most bytes read of the version probe's answer (`7.16 (stable)`).
pub const PROBE_CAP: usize = 4096;

/// Exports up to this size are validated, normalized and hashed on the
/// async worker (about 0.1 ms per 100 KB, no more than russh spends
/// decrypting them there); larger ones on a blocking thread, so that a
/// multi-megabyte export never stalls other sessions.
const INLINE_PREPARE_BYTES: usize = 128 * 1024;

/// Backs devices up over SSH with the configured limits, pinning host keys in `K`.
#[derive(Clone)]
pub struct SshExecutor<K> {
    limits: Limits,
    known_hosts: K,
    keys: ssh::KeyCache,
}

impl<K: HostKeys> SshExecutor<K> {
    /// An executor using `limits` and pinning host keys in `known_hosts`.
    pub fn new(limits: Limits, known_hosts: K) -> Self {
        Self {
            limits,
            known_hosts,
            keys: ssh::KeyCache::default(),
        }
    }

    /// Collects, validates and normalizes one export, without the job time limit.
    #[instrument(name = "backup.collect", skip_all, fields(device_id = %device.id))]
    pub async fn collect(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let started = Instant::now();
        let reading =
            |e: anyhow::Error| Error::Unexpected(e.context("reading the pinned host key"));
        let mut pinned = self.known_hosts.pinned(&device.id).await.map_err(reading)?;
        let connect = |pinned: Option<String>| async move {
            ssh::connect(
                device,
                pinned.as_deref(),
                self.limits.connect_timeout,
                &self.keys,
            )
            .await
        };
        let mut conn = match connect(pinned.clone()).await {
            // The key in memory may be stale (reset elsewhere): a mismatch
            // is only one against the key where it is kept.
            Err(mismatch @ Error::HostKeyMismatch { .. }) if pinned.is_some() => {
                let fresh = self
                    .known_hosts
                    .pinned_fresh(&device.id)
                    .await
                    .map_err(reading)?;
                if fresh == pinned {
                    return Err(mismatch);
                }
                pinned = fresh;
                connect(pinned.clone()).await?
            }
            result => result?,
        };
        let fingerprint = conn.host_key_fingerprint().to_owned();
        // A first-use pin waits until it is on disk (a known-hosts file
        // coalesces concurrent pins into one write); the export runs
        // meanwhile, and the run succeeds only once both are done.
        let pin = async {
            if pinned.is_none() {
                self.known_hosts
                    .pin(&device.id, &fingerprint)
                    .await
                    .map_err(|e| Error::Unexpected(e.context("pinning the host key")))?;
                info!(fingerprint = %fingerprint, "ssh_host_key_pinned");
            }
            Ok::<_, Error>(())
        };
        let (pinning, result) = tokio::join!(pin, self.export(&mut conn));
        conn.close().await;
        pinning?;
        let (stdout, probed_version, mut warnings) = result?;
        let raw_bytes = stdout.len();
        let max = self.limits.max_config_bytes;
        let prepare = move || {
            let validated = validate(&stdout, max)?;
            let normalized = normalize(validated.text);
            let sha256_hash = sha256_hex(&normalized.text);
            Ok::<_, Error>((normalized, sha256_hash, validated.warnings))
        };
        // Handing a typical export to a blocking thread and back costs more
        // (two thread wake-ups) than the work itself.
        let (normalized, sha256_hash, validation_warnings) = if raw_bytes <= INLINE_PREPARE_BYTES {
            prepare()?
        } else {
            spawn_blocking_with_tracing(prepare).await.map_err(|e| {
                Error::Unexpected(anyhow::Error::new(e).context("normalizing the export"))
            })??
        };
        warnings.extend(validation_warnings);
        Ok(Outcome {
            device_id: device.id.clone(),
            tenant_id: device.tenant.clone(),
            sha256_hash,
            routeros_version: normalized.routeros_version.or(probed_version),
            config_text: normalized.text,
            collected_at: Utc::now(),
            warnings,
            trigger,
            raw_bytes,
            duration: started.elapsed(),
            host_key_fingerprint: fingerprint,
            recorded: false,
        })
    }

    /// Picks the export command and runs it: (stdout, probed version, warnings).
    async fn export(
        &self,
        conn: &mut Connection,
    ) -> Result<(Vec<u8>, Option<String>, Vec<String>)> {
        let timeout = self.limits.command_timeout;
        let mut warnings = Vec::new();
        let mut probed = None;
        let command = match &self.limits.command {
            Command::Fixed(c) => c.clone(),
            Command::Auto {
                hide_sensitive: true,
            } => "/export hide-sensitive".to_owned(),
            Command::Auto {
                hide_sensitive: false,
            } => {
                let probe = match conn.exec(VERSION_PROBE, PROBE_CAP, timeout).await {
                    Ok(probe) => probe,
                    // The cap is the probe's, not `max_config_bytes`: saying
                    // "export larger than the cap" would send the user to
                    // the wrong setting. A device (or a forced command) that
                    // prints its export whatever it is asked lands here.
                    Err(Error::TooLarge { limit }) => {
                        return Err(Error::InvalidOutput(format!(
                            "version probe failed: it answered more than {limit} bytes \
                             (a version is a few bytes; does the device run every \
                             command as an export?)"
                        )));
                    }
                    Err(e) => return Err(e),
                };
                probed = parse_probe(&probe.stdout);
                match probed.as_deref().map(major_version) {
                    Some(Some(major)) if major >= 7 => "/export show-sensitive".to_owned(),
                    Some(Some(_)) => "/export".to_owned(),
                    _ => {
                        warn!("version probe gave no version; exporting without show-sensitive");
                        warnings.push(
                            "version probe failed: exported with /export (secrets may be hidden on v7)"
                                .to_owned(),
                        );
                        "/export".to_owned()
                    }
                }
            }
        };
        let out = conn
            .exec(&command, self.limits.max_config_bytes, timeout)
            .await?;
        if out.stdout.iter().all(u8::is_ascii_whitespace)
            && let Some(code) = out.exit_status.filter(|c| *c != 0)
        {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(Error::CommandFailed(format!(
                "exit status {code}: {}",
                first.chars().take(200).collect::<String>()
            )));
        }
        Ok((out.stdout, probed, warnings))
    }
}

impl<K: HostKeys> Executor for SshExecutor<K> {
    #[instrument(name = "backup.execute", skip_all, fields(device_id = %device.id, trigger = ?trigger))]
    async fn run(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let limit = self.limits.job_timelimit;
        match tokio::time::timeout(limit, self.collect(device, trigger)).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut {
                stage: "job",
                after: limit,
            }),
        }
    }
}

/// `7.16` from the probe's `7.16 (stable)`; `None` for anything else.
pub fn parse_probe(stdout: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(stdout).ok()?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let version = first.split_whitespace().next()?;
    let valid = version.split('.').count() >= 2
        && version
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
        && version.starts_with(|c: char| c.is_ascii_digit());
    valid.then(|| version.to_owned())
}

/// The major version number of `7.16.2`, or `None`.
pub fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_output_of_v6_and_v7_gives_the_version() {
        assert_eq!(parse_probe(b"7.16 (stable)\r\n").as_deref(), Some("7.16"));
        assert_eq!(
            parse_probe(b"\r\n6.49.10 (long-term)\r\n").as_deref(),
            Some("6.49.10")
        );
        assert_eq!(
            parse_probe(b"7.21beta2 (testing)").as_deref(),
            Some("7.21beta2")
        );
    }

    #[test]
    fn error_text_or_garbage_from_the_probe_gives_no_version() {
        assert_eq!(parse_probe(b"bad command name put (line 1 column 2)"), None);
        assert_eq!(parse_probe(b""), None);
        assert_eq!(parse_probe(&[0xff, 0xfe]), None);
        assert_eq!(parse_probe(b"7 (stable)"), None);
    }

    #[test]
    fn major_versions_choose_the_export_flavour() {
        assert_eq!(major_version("7.16"), Some(7));
        assert_eq!(major_version("6.49.10"), Some(6));
        assert_eq!(major_version("x.1"), None);
    }
}
