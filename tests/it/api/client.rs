//! [`TestApi`]'s HTTP side: one method per endpoint, each returning the raw
//! response, plus raw-socket requests for paths a URL library would
//! normalize.

use std::fmt::Display;

use super::TestApi;

impl TestApi {
    /// `GET {path}` with a bearer `token` (none when empty).
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(self.client.get(format!("{}{path}", self.address)), token)
            .await
    }

    /// `POST {path}` with a bearer `token` (none when empty).
    pub async fn post(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(self.client.post(format!("{}{path}", self.address)), token)
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::Response {
        let req = if token.is_empty() {
            req
        } else {
            req.bearer_auth(token)
        };
        req.send().await.expect("request sent")
    }

    pub async fn healthz(&self) -> reqwest::Response {
        self.get("/healthz", "").await
    }

    pub async fn readyz(&self) -> reqwest::Response {
        self.get("/readyz", "").await
    }

    pub async fn metrics(&self) -> reqwest::Response {
        self.get("/metrics", "").await
    }

    pub async fn openapi(&self) -> reqwest::Response {
        self.get("/api/openapi.json", "").await
    }

    pub async fn list_devices(&self, tid: &str, token: &str) -> reqwest::Response {
        self.get(&format!("/api/tenants/{tid}/devices"), token)
            .await
    }

    pub async fn get_device(&self, tid: &str, did: &str, token: &str) -> reqwest::Response {
        self.get(&format!("/api/tenants/{tid}/devices/{did}"), token)
            .await
    }

    pub async fn reset_host_key(&self, tid: &str, did: &str, token: &str) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/ssh-host-key/reset");
        self.post(&path, token).await
    }

    /// `query` is the raw query string without `?` (may be empty).
    pub async fn list_snapshots(
        &self,
        tid: &str,
        did: &str,
        query: &str,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshots?{query}");
        self.get(&path, token).await
    }

    pub async fn get_snapshot(
        &self,
        tid: &str,
        did: &str,
        sid: impl Display,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}");
        self.get(&path, token).await
    }

    pub async fn snapshot_content(
        &self,
        tid: &str,
        did: &str,
        sid: impl Display,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/content");
        self.get(&path, token).await
    }

    pub async fn download_snapshot(
        &self,
        tid: &str,
        did: &str,
        sid: impl Display,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/download");
        self.get(&path, token).await
    }

    /// `query` is the raw query string without `?` (e.g. `against=3`).
    pub async fn snapshot_diff(
        &self,
        tid: &str,
        did: &str,
        sid: impl Display,
        query: &str,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/diff?{query}");
        self.get(&path, token).await
    }

    pub async fn config_history(
        &self,
        tid: &str,
        did: &str,
        query: &str,
        token: &str,
    ) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-history?{query}");
        self.get(&path, token).await
    }

    pub async fn list_audit_events(
        &self,
        tid: &str,
        query: &str,
        token: &str,
    ) -> reqwest::Response {
        self.get(&format!("/api/tenants/{tid}/audit-events?{query}"), token)
            .await
    }

    pub async fn trigger(&self, tid: &str, did: &str, token: &str) -> reqwest::Response {
        let path = format!("/api/tenants/{tid}/devices/{did}/config-snapshot/trigger");
        self.post(&path, token).await
    }

    /// Sends `request` (a whole HTTP/1.1 request head) over a raw socket, so
    /// paths reach the server byte for byte (no client-side normalization),
    /// and returns the status code.
    pub async fn raw_status(&self, request: &[u8]) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = self.address.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        socket.write_all(request).await.expect("write");
        let mut head = vec![0u8; 64];
        let n = socket.read(&mut head).await.expect("read");
        let line = String::from_utf8_lossy(&head[..n]).into_owned();
        line.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {line:?}"))
    }
}
