-- The notification outbox (DESIGN.md §14). A row is one event for one
-- target, written in the same transaction as the snapshot or device state
-- change that caused it, so a crash neither loses nor invents one.
-- webhook_id is fixed at insert: every retry of the row carries it.
-- Times the dispatcher compares are milliseconds since the epoch, the same
-- on both backends. A dispatcher claims due rows by setting lease_until_ms
-- and lease_token (FOR UPDATE SKIP LOCKED on PostgreSQL); a lease that ran
-- out (a node that died) makes the row due again.
CREATE TABLE notification (
    notification_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       TEXT NOT NULL UNIQUE,
    target           TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenant (tenant_id),
    device_id        TEXT NOT NULL,
    -- The event's data as JSON: ids, counts and summaries, never config
    -- or diff text (a diff is read, and redacted, at delivery).
    payload          TEXT NOT NULL,
    -- pending, delivered or failed.
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_ms       BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    lease_until_ms   BIGINT,
    lease_token      TEXT,
    last_error       TEXT,
    delivered_ms     BIGINT
);
CREATE INDEX notification_due_idx ON notification (status, next_attempt_ms);
CREATE INDEX notification_tenant_idx ON notification (tenant_id, notification_id DESC);

-- When backup.stale was last queued for the device; a success after it
-- starts a new period of staleness.
ALTER TABLE device ADD COLUMN stale_notified_at TIMESTAMPTZ;
