//! SSH collector client (russh): connects to one device, checks its host key
//! against the pinned fingerprint, logs in with a password or a key, and runs
//! commands on exec channels with a byte cap and a timeout. It never opens an
//! interactive shell and never logs credentials or command output.
//!
//! Entry points: [`connect`], then [`Connection::exec`] and [`Connection::close`].
//! `transport` owns the client config, handshake and host-key policy; `login`
//! the credentials.

use std::time::Duration;

use russh::client::{self, Handle};
use russh::{Channel, ChannelMsg, Disconnect};
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, instrument};

use crate::backup::{self, Device, Error};
use crate::id::DeviceId;

mod login;
mod transport;

pub use login::KeyCache;
use login::Login;
use transport::{HostKeyCheck, unreachable_with};

/// stderr beyond this is dropped: it only feeds error messages.
const STDERR_CAP: usize = 64 * 1024;
/// First allocation for stdout, made when the first data arrives (a session
/// waiting for a slow device holds none); it doubles with the data, never
/// past the cap.
const STDOUT_FIRST_CAPACITY: usize = 64 * 1024;
/// Bound of the polite goodbye in [`Connection::close`] and of a channel close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An authenticated SSH connection to one device.
pub struct Connection {
    handle: Handle<HostKeyCheck>,
    host_key_fingerprint: String,
    device_id: DeviceId,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("device_id", &self.device_id)
            .field("host_key_fingerprint", &self.host_key_fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a command wrote and how it ended.
#[derive(Clone, Default)]
pub struct ExecOutput {
    /// Standard output, at most the `max_bytes` given to [`Connection::exec`].
    pub stdout: Vec<u8>,
    /// Standard error, truncated to its first 64 KiB.
    pub stderr: Vec<u8>,
    /// Exit status, when the server sent one.
    pub exit_status: Option<u32>,
}

impl std::fmt::Debug for ExecOutput {
    // Output may hold device secrets: show sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOutput")
            .field("stdout", &format_args!("<{} bytes>", self.stdout.len()))
            .field("stderr", &format_args!("<{} bytes>", self.stderr.len()))
            .field("exit_status", &self.exit_status)
            .finish()
    }
}

/// Connects, checks the host key and authenticates, all within `connect_timeout`.
///
/// With `pinned` set, a server presenting another host key is refused;
/// without it any key is accepted and its fingerprint is available from
/// [`Connection::host_key_fingerprint`] for the caller to pin. A private key
/// comes from `keys`, read and decrypted (before the clock starts) only when
/// its file is new or changed.
///
/// # Errors
/// [`Error::HostKeyMismatch`], [`Error::AuthRejected`],
/// [`Error::DeviceUnreachable`] (DNS, refused, reset, closed during the
/// handshake), [`Error::TimedOut`] with stage `connect`, and
/// [`Error::Unexpected`] for an unusable key file or a failed negotiation.
#[instrument(skip_all, fields(device_id = %device.id))]
pub async fn connect(
    device: &Device,
    pinned: Option<&str>,
    connect_timeout: Duration,
    keys: &KeyCache,
) -> backup::Result<Connection> {
    let login = Login::prepare(&device.credentials.auth, keys).await?;
    let attempt = async {
        let (handle, fingerprint) = transport::handshake(device, pinned).await?;
        let handle = login
            .authenticate(handle, &device.credentials.username)
            .await?;
        Ok::<_, Error>((handle, fingerprint))
    };
    let (handle, host_key_fingerprint) =
        timeout(connect_timeout, attempt)
            .await
            .map_err(|_| Error::TimedOut {
                stage: "connect",
                after: connect_timeout,
            })??;
    debug!(host_key = %host_key_fingerprint, "connected");
    Ok(Connection {
        handle,
        host_key_fingerprint,
        device_id: device.id.clone(),
    })
}

impl Connection {
    /// `SHA256:…` fingerprint of the host key the server presented.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Runs `command` on a new exec channel; stdout capped at `max_bytes`.
    ///
    /// Collects until the server closes the channel (the exit status may
    /// follow EOF), all within `timeout`. The connection stays usable after a
    /// command error, but should be closed after a timeout.
    ///
    /// # Errors
    /// [`Error::TooLarge`] as soon as stdout exceeds `max_bytes`,
    /// [`Error::TimedOut`] with stage `command`, [`Error::DeviceUnreachable`]
    /// when the connection drops before the channel closes (partial output is
    /// discarded), [`Error::CommandFailed`] when the server refuses the exec.
    #[instrument(skip_all, fields(device_id = %self.device_id))]
    pub async fn exec(
        &mut self,
        command: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> backup::Result<ExecOutput> {
        let deadline = Instant::now() + timeout;
        let timed_out = || Error::TimedOut {
            stage: "command",
            after: timeout,
        };
        let mut channel = timeout_at(deadline, self.open_exec(command))
            .await
            .map_err(|_| timed_out())??;
        let result = match timeout_at(deadline, collect(&mut channel, max_bytes)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        };
        match result {
            Ok(output) => {
                debug!(
                    stdout_bytes = output.stdout.len(),
                    stderr_bytes = output.stderr.len(),
                    exit_status = ?output.exit_status,
                    "command finished"
                );
                Ok(output)
            }
            Err(e) => {
                close_channel(&channel).await;
                Err(e)
            }
        }
    }

    /// Disconnects politely (best effort, bounded).
    #[instrument(skip_all, fields(device_id = %self.device_id))]
    pub async fn close(self) {
        let handle = self.handle;
        let goodbye = async {
            handle
                .disconnect(Disconnect::ByApplication, "", "en")
                .await?;
            handle.await
        };
        match timeout(CLOSE_TIMEOUT, goodbye).await {
            Ok(Ok(())) => debug!("disconnected"),
            Ok(Err(e)) => debug!(error = %e, "disconnect failed"),
            Err(_) => debug!("disconnect timed out"),
        }
    }

    async fn open_exec(&self, command: &str) -> backup::Result<Channel<client::Msg>> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.channel_error(e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.channel_error(e))?;
        Ok(channel)
    }

    fn channel_error(&self, e: russh::Error) -> Error {
        if self.handle.is_closed() {
            unreachable_with("connection lost before the command", e)
        } else {
            Error::Unexpected(anyhow::Error::new(e).context("opening an exec channel"))
        }
    }
}

/// Reads a channel until the server closes it.
async fn collect(
    channel: &mut Channel<client::Msg>,
    max_bytes: usize,
) -> backup::Result<ExecOutput> {
    let mut output = ExecOutput::default();
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => push_capped(&mut output.stdout, &data, max_bytes)?,
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                let room = STDERR_CAP.saturating_sub(output.stderr.len());
                output
                    .stderr
                    .extend_from_slice(&data[..data.len().min(room)]);
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => output.exit_status = Some(exit_status),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                debug!(signal = ?signal_name, "command killed by a signal");
            }
            Some(ChannelMsg::Failure) => {
                return Err(Error::CommandFailed(
                    "the device refused to run the command".to_owned(),
                ));
            }
            Some(ChannelMsg::Close) => return Ok(output),
            // EOF is not the end: the exit status may follow it.
            Some(_) => {}
            None => {
                return Err(Error::DeviceUnreachable {
                    reason: "connection lost during the command".to_owned(),
                    source: None,
                });
            }
        }
    }
}

/// Appends `data` unless that would exceed `max_bytes`; grows the buffer
/// (first to [`STDOUT_FIRST_CAPACITY`], then doubling) without ever
/// reserving past the cap.
fn push_capped(buffer: &mut Vec<u8>, data: &[u8], max_bytes: usize) -> backup::Result<()> {
    let needed = buffer.len() + data.len();
    if needed > max_bytes {
        return Err(Error::TooLarge { limit: max_bytes });
    }
    if needed > buffer.capacity() {
        let target = buffer
            .capacity()
            .saturating_mul(2)
            .max(STDOUT_FIRST_CAPACITY)
            .clamp(needed, max_bytes);
        buffer.reserve_exact(target - buffer.len());
    }
    buffer.extend_from_slice(data);
    Ok(())
}

async fn close_channel(channel: &Channel<client::Msg>) {
    match timeout(CLOSE_TIMEOUT, channel.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "closing the channel failed"),
        Err(_) => debug!("closing the channel timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_capped_accepts_up_to_the_cap_and_never_reserves_past_it() {
        let mut buffer = Vec::with_capacity(4);
        for _ in 0..25 {
            push_capped(&mut buffer, &[0; 4], 100).expect("within the cap");
        }
        assert_eq!(buffer.len(), 100);
        assert!(buffer.capacity() <= 100);
        let err = push_capped(&mut buffer, &[0], 100).expect_err("over the cap");
        assert!(matches!(err, Error::TooLarge { limit: 100 }));
        assert_eq!(buffer.len(), 100);
    }

    #[test]
    fn stdout_is_allocated_with_the_first_data_then_doubles() {
        let output = ExecOutput::default();
        assert_eq!(output.stdout.capacity(), 0, "nothing held before data");
        let mut buffer = output.stdout;
        push_capped(&mut buffer, &[0; 10], 1 << 20).expect("within the cap");
        assert_eq!(buffer.capacity(), STDOUT_FIRST_CAPACITY);
        push_capped(&mut buffer, &vec![0; STDOUT_FIRST_CAPACITY], 1 << 20).expect("within");
        assert_eq!(buffer.capacity(), 2 * STDOUT_FIRST_CAPACITY);
        assert_eq!(buffer.len(), STDOUT_FIRST_CAPACITY + 10);
    }
}
