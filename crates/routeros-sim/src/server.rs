//! The russh server handler of one connection: authentication, exec requests, and the
//! task that writes each reply (latency and output faults included).
//!
//! Exec only, like cfgsnap uses RouterOS: shell and subsystem requests are refused.
//! Entry points: [`SimHandler::new`], [`Connection`].

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug};

use super::device::{Device, Reply};

/// Time given to queued output to reach the socket before a disconnect fault drops it.
const FLUSH_GRACE: Duration = Duration::from_millis(250);

/// Shuts a TCP connection down from outside russh's session task (a duplicate of the
/// socket's descriptor): the peer sees the TCP connection end without an SSH close.
pub(crate) struct Killer(pub(crate) std::net::TcpStream);

impl Killer {
    /// Shuts both directions of the socket down.
    pub(crate) fn kill(&self) {
        if let Err(e) = self.0.shutdown(Shutdown::Both) {
            debug!(error = %e, "socket already closed");
        }
    }
}

/// What the handler and its reply tasks share about the connection.
pub(crate) struct Connection {
    /// Drops the TCP connection.
    pub(crate) killer: Killer,
    /// Cancelled when the connection ends or the simulator stops.
    pub(crate) token: CancellationToken,
    /// Where reply tasks are spawned, so shutdown waits for them.
    pub(crate) tracker: TaskTracker,
}

/// The handler of one SSH connection to a simulated device.
pub(crate) struct SimHandler {
    device: Arc<Device>,
    conn: Arc<Connection>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl SimHandler {
    /// A handler for a new connection to `device`.
    pub(crate) fn new(device: Arc<Device>, conn: Arc<Connection>) -> Self {
        SimHandler {
            device,
            conn,
            channels: HashMap::new(),
        }
    }
}

/// `Accept` or a plain reject.
fn verdict(ok: bool) -> Auth {
    if ok { Auth::Accept } else { Auth::reject() }
}

impl Handler for SimHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(verdict(self.device.accepts_password(user, password)))
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(verdict(self.device.accepts_key(user, offer.public_key)))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(verdict(self.device.accepts_key(user, key.public_key)))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!("shell request refused");
        session.channel_failure(channel)?;
        let text = b"routeros-sim: no interactive shell; run a command (ssh host '/export')\r\n";
        session.extended_data(channel, 1, text.to_vec())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        self.channels.remove(&channel);
        session.close(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        debug!(subsystem = name, "subsystem request refused");
        session.channel_failure(channel)
    }

    async fn exec_request(
        &mut self,
        channel_id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(channel) = self.channels.remove(&channel_id) else {
            return session.channel_failure(channel_id);
        };
        session.channel_success(channel_id)?;
        let line = String::from_utf8_lossy(data);
        debug!(command = %line, "exec");
        let reply = self.device.reply_to(&line);
        let task = send_reply(channel, reply, self.device.spec.latency, self.conn.clone());
        self.conn.tracker.spawn(task.in_current_span());
        Ok(())
    }
}

/// Writes `reply` on `channel` unless the connection ends first.
async fn send_reply(channel: Channel<Msg>, reply: Reply, latency: Duration, conn: Arc<Connection>) {
    tokio::select! {
        () = conn.token.cancelled() => {}
        result = deliver(&channel, reply, latency, &conn) => {
            if let Err(e) = result {
                debug!(error = %e, "reply not delivered");
            }
        }
    }
}

/// Sends the reply, then exit status 0, EOF and close (except for hang and disconnect).
async fn deliver(
    channel: &Channel<Msg>,
    reply: Reply,
    latency: Duration,
    conn: &Connection,
) -> Result<(), russh::Error> {
    tokio::time::sleep(latency).await;
    match reply {
        Reply::Text(body) => channel.data_bytes(body).await?,
        Reply::Drip { body, chunk, every } => {
            for piece in body.chunks(chunk.max(1)) {
                channel.data_bytes(piece.to_vec()).await?;
                tokio::time::sleep(every).await;
            }
        }
        Reply::Huge(mut export) => {
            while let Some(chunk) = export.next_chunk() {
                channel.data_bytes(chunk).await?;
            }
        }
        Reply::Disconnect(mut body) => {
            body.truncate(body.len() / 2);
            channel.data_bytes(body).await?;
            tokio::time::sleep(FLUSH_GRACE).await;
            debug!("dropping the connection mid-output");
            conn.killer.kill();
            return Ok(());
        }
        Reply::Hang => {
            debug!("hanging after exec");
            conn.token.cancelled().await;
            return Ok(());
        }
    }
    channel.exit_status(0).await?;
    channel.eof().await?;
    channel.close().await
}
