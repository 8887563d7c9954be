-- cfgsnap schema, version 1 (SQLite). The PostgreSQL twin lives in
-- migrations/postgres/ with the same tables, columns and meaning.

-- Tenants and devices are mirrored from config.toml at start-up and on
-- reload. A device removed from the configuration is marked inactive, never
-- deleted, so its history stays readable.
CREATE TABLE tenant (
    tenant_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Device ids are unique across tenants (DESIGN.md §2), so device_id alone is
-- the key; tenant_id is carried on every child row so that each query can be
-- scoped to a tenant without a join.
CREATE TABLE device (
    device_id             TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenant (tenant_id),
    name                  TEXT NOT NULL,
    host                  TEXT NOT NULL,
    port                  INTEGER NOT NULL,
    active                INTEGER NOT NULL DEFAULT 1,
    -- Trust on first use: the SHA256: fingerprint seen first.
    host_key_fingerprint  TEXT,
    host_key_pinned_at    TEXT,
    -- Backup state, written after every attempt.
    last_attempt_at       TEXT,
    last_success_at       TEXT,
    last_status           TEXT,
    last_error_kind       TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    next_attempt_at       TEXT,
    -- auth_failed or hostkey_mismatch: no scheduled retries until cleared.
    blocked_reason        TEXT,
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX device_tenant_idx ON device (tenant_id, device_id);

-- One row per distinct configuration version. content is the normalized
-- export, compressed then sealed with the tenant's AEAD key (key_id, nonce).
CREATE TABLE snapshot (
    snapshot_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id              TEXT NOT NULL REFERENCES tenant (tenant_id),
    device_id              TEXT NOT NULL REFERENCES device (device_id),
    sha256_hash            TEXT NOT NULL,
    collected_at           TEXT NOT NULL,
    trigger                TEXT NOT NULL,
    routeros_version       TEXT,
    size_bytes             BIGINT NOT NULL,
    line_count             BIGINT NOT NULL,
    normalization_version  INTEGER NOT NULL,
    warnings               TEXT NOT NULL DEFAULT '[]',
    poller_id              TEXT,
    key_id                 TEXT NOT NULL,
    nonce                  BLOB NOT NULL,
    content                BLOB NOT NULL,
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Newest-first listing, cursor pages and the dedup lookup of the newest
-- snapshot. Snapshot ids grow with collected_at per device, because ingest
-- refuses events older than the newest snapshot.
CREATE INDEX snapshot_device_idx ON snapshot (device_id, snapshot_id);
-- Retention scans by age.
CREATE INDEX snapshot_collected_idx ON snapshot (collected_at);

-- The diff of a snapshot against its predecessor, sealed like the content.
-- When retention deletes the predecessor the diff stays (previous becomes NULL).
CREATE TABLE snapshot_diff (
    snapshot_id           INTEGER PRIMARY KEY REFERENCES snapshot (snapshot_id) ON DELETE CASCADE,
    previous_snapshot_id  INTEGER REFERENCES snapshot (snapshot_id) ON DELETE SET NULL,
    tenant_id             TEXT NOT NULL,
    lines_added           INTEGER NOT NULL,
    lines_removed         INTEGER NOT NULL,
    key_id                TEXT NOT NULL,
    nonce                 BLOB NOT NULL,
    content               BLOB NOT NULL
);
CREATE INDEX snapshot_diff_previous_idx ON snapshot_diff (previous_snapshot_id);

-- Parsed change summaries per component ("Added 2 firewall filter rules").
CREATE TABLE config_change (
    config_change_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id       INTEGER NOT NULL REFERENCES snapshot (snapshot_id) ON DELETE CASCADE,
    tenant_id         TEXT NOT NULL,
    component         TEXT NOT NULL,
    summary           TEXT NOT NULL,
    lines_added       INTEGER NOT NULL,
    lines_removed     INTEGER NOT NULL
);
CREATE INDEX config_change_snapshot_idx ON config_change (snapshot_id);

-- Append-only audit log. detail is a JSON object; it never holds config text.
CREATE TABLE audit_event (
    audit_event_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT,
    device_id       TEXT,
    action          TEXT NOT NULL,
    actor           TEXT,
    detail          TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX audit_event_tenant_idx ON audit_event (tenant_id, audit_event_id DESC);
