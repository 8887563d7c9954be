//! The running simulator: one TCP listener per device, one russh session per accepted
//! socket, and orderly shutdown (explicit or on drop).
//!
//! Owns the listeners and every task it spawns; nothing outlives the [`Simulator`].
//! Entry points: [`start`], [`Simulator::shutdown`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use super::DeviceSpec;
use super::device::Device;
use super::server::{Connection, Killer, SimHandler};

/// How long a stopped connection's session task gets to notice its socket is gone.
const SESSION_DRAIN: Duration = Duration::from_secs(1);

/// A running set of simulated devices. Dropping it stops everything (without waiting);
/// [`Simulator::shutdown`] also waits until every task has finished.
pub struct Simulator {
    addrs: Vec<SocketAddr>,
    devices: Vec<Arc<Device>>,
    token: CancellationToken,
    tracker: TaskTracker,
}

/// Starts one SSH listener per device spec, on consecutive ports from `listen`'s port
/// (port 0: an OS-chosen port for each device), and returns once all are bound.
///
/// Device `i` keeps the same host key and generated configuration across restarts.
/// RSA host keys (v6 devices, [`super::HostKeyKind::Rsa`]) take about a second each to
/// derive the first time in a process.
///
/// # Errors
/// Binding a listener fails (address in use, port beyond 65535, …).
pub async fn start(listen: SocketAddr, specs: Vec<DeviceSpec>) -> io::Result<Simulator> {
    let mut listeners = Vec::with_capacity(specs.len());
    let mut addrs = Vec::with_capacity(specs.len());
    let mut devices = Vec::with_capacity(specs.len());
    for (index, spec) in specs.into_iter().enumerate() {
        let addr = device_addr(listen, index)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
        addrs.push(listener.local_addr()?);
        devices.push(Arc::new(Device::new(index, spec).await?));
        listeners.push(listener);
    }
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    for (listener, device) in listeners.into_iter().zip(&devices) {
        let span = info_span!("sim.device", index = device.index);
        let task = run_listener(listener, device.clone(), token.clone(), tracker.clone());
        tracker.spawn(task.instrument(span));
    }
    Ok(Simulator {
        addrs,
        devices,
        token,
        tracker,
    })
}

/// The address of device `index`: `listen` with its port advanced by `index`.
fn device_addr(listen: SocketAddr, index: usize) -> io::Result<SocketAddr> {
    if listen.port() == 0 {
        return Ok(listen);
    }
    let port = u16::try_from(usize::from(listen.port()) + index).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "device {index}: port {} + {index} is beyond 65535",
                listen.port()
            ),
        )
    })?;
    Ok(SocketAddr::new(listen.ip(), port))
}

impl Simulator {
    /// The listening address of each device, in spec order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The `SHA256:…` fingerprint of device `i`'s host key (under the host-key-change
    /// fault: the key of the most recent connection).
    ///
    /// # Panics
    /// When `i` is not a device index.
    pub fn host_key_fingerprint(&self, i: usize) -> String {
        self.devices[i].fingerprint()
    }

    /// How many `/export` commands device `i` has answered (faulty answers included,
    /// syntax errors not).
    ///
    /// # Panics
    /// When `i` is not a device index.
    pub fn exports_served(&self, i: usize) -> u64 {
        self.devices[i].exports_served()
    }

    /// Stops accepting, drops every connection and waits until all tasks have ended.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.token.cancel();
        self.tracker.close();
    }
}

/// Accepts connections to one device until `stop` is cancelled.
async fn run_listener(
    listener: TcpListener,
    device: Arc<Device>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let span = info_span!("sim.connection", %peer);
                let task = serve_connection(socket, device.clone(), stop.clone(), tracker.clone());
                tracker.spawn(task.instrument(span));
            }
            Err(e) => {
                // E.g. out of file descriptors: pause rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs one SSH session; logs how it ended.
async fn serve_connection(
    socket: TcpStream,
    device: Arc<Device>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let token = stop.child_token();
    if let Err(e) = run_session(socket, device, token.clone(), tracker).await {
        debug!(error = %e, cause = ?e, "session ended with an error");
    }
    // Stops this connection's reply tasks (a hanging reply waits for this).
    token.cancel();
}

/// Hands the socket to russh and waits until the session ends or `token` is cancelled.
async fn run_session(
    socket: TcpStream,
    device: Arc<Device>,
    token: CancellationToken,
    tracker: TaskTracker,
) -> anyhow::Result<()> {
    // `run_stream` leaves the socket as given (russh applies `nodelay` only
    // to sockets it accepts itself): without it, a reply split in two
    // segments waits for the client's delayed ACK, ~40 ms per round trip.
    if let Err(e) = socket.set_nodelay(true) {
        debug!(error = %e, "set_nodelay failed");
    }
    let std_socket = socket.into_std().context("taking the socket")?;
    let killer = Killer(std_socket.try_clone().context("duplicating the socket")?);
    let socket = TcpStream::from_std(std_socket).context("registering the socket")?;
    let config = device.connection_config().await?;
    let conn = Arc::new(Connection {
        killer,
        token: token.clone(),
        tracker,
    });
    let handler = SimHandler::new(device, conn.clone());
    let session = tokio::select! {
        session = russh::server::run_stream(config, socket, handler) => {
            session.context("ssh handshake")?
        }
        () = token.cancelled() => return Ok(()),
    };
    tokio::pin!(session);
    let result = tokio::select! {
        result = &mut session => result.context("ssh session"),
        () = token.cancelled() => {
            conn.killer.kill();
            if tokio::time::timeout(SESSION_DRAIN, &mut session).await.is_err() {
                debug!("session task did not stop in time");
            }
            Ok(())
        }
    };
    // The duplicate descriptor would keep the socket open: close it explicitly.
    conn.killer.kill();
    result
}
