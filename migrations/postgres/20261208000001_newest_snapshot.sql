-- The device's newest version (its highest snapshot id), NULL while it has
-- none: ingest sets it with each new version, retention recomputes it for
-- the devices it deleted from. The fleet's order by last change keys on it
-- (a MAX over the device's snapshots per listed row was 200 ms a page at
-- 10,000 devices and 1,000,000 versions), through the index below, whose
-- expression is the one `DeviceOrder::LastChange` sorts by.
ALTER TABLE device ADD COLUMN newest_snapshot_id BIGINT;
UPDATE device SET newest_snapshot_id =
    (SELECT MAX(s.snapshot_id) FROM snapshot s WHERE s.device_id = device.device_id);
CREATE INDEX device_last_change_idx
    ON device (tenant_id, (0 - COALESCE(newest_snapshot_id, 0)), device_id);
