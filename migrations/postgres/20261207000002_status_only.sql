-- A version that differs from its predecessor only in status comments
-- (`# inactive time`, `# managed by CAPsMAN`, …; DESIGN.md §16) is marked
-- at ingest, so the history can say so and config.changed can skip it.
-- Versions stored before this migration stay unmarked (false): recomputing
-- the mark would mean decrypting every stored version.
ALTER TABLE snapshot ADD COLUMN status_only BOOLEAN NOT NULL DEFAULT FALSE;
