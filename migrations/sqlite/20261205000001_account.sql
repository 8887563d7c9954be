-- Local accounts and their sessions (DESIGN.md §11); the PostgreSQL twin in
-- migrations/postgres/ explains the columns.
CREATE TABLE account (
    account_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username             TEXT NOT NULL UNIQUE,
    tenant_id            TEXT,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((role = 'super_admin') = (tenant_id IS NULL))
);
CREATE INDEX account_tenant_idx ON account (tenant_id, username);

CREATE TABLE session (
    session_id    TEXT PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES account (account_id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL UNIQUE,
    csrf_token    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    ended_at      TEXT
);
CREATE INDEX session_account_idx ON session (account_id);
