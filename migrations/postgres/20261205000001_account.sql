-- Local accounts and their sessions (DESIGN.md §11).
--
-- username is unique across tenants, so a sign-in needs no tenant. A
-- super_admin has no tenant; every other role belongs to exactly one. The
-- tenant is checked against config.toml by the CLI and the API, not by a
-- foreign key: tenants are mirrored from the configuration and a user may be
-- created before the first start has mirrored them.
CREATE TABLE account (
    account_id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    tenant_id            TEXT,
    role                 TEXT NOT NULL,
    -- Argon2id PHC string; never leaves the store.
    password_hash        TEXT NOT NULL,
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((role = 'super_admin') = (tenant_id IS NULL))
);
CREATE INDEX account_tenant_idx ON account (tenant_id, username);

-- A session is the server-side half of a sign-in. session_id is public (the
-- `sid` claim of access tokens); the cookie carries a random secret whose
-- SHA-256 is secret_hash, so a copy of the database opens no session. A
-- session ends when ended_at is set (logout, password change, the account
-- disabled) or its idle or absolute timeout passes; deleting the account
-- deletes its sessions.
CREATE TABLE session (
    session_id    TEXT PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES account (account_id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL UNIQUE,
    csrf_token    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE INDEX session_account_idx ON session (account_id);
