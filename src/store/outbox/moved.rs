//! A device's notifications follow it to another tenant
//! ([`retag_moved_device`], inside the move's transaction), as its history
//! does: its delivered and failed rows get the new tenant, so its admins
//! list and may redeliver them (with the data they were sent with). Pending
//! rows get the new tenant in their data as well, since the link and the
//! diff are looked up under the row's tenant at delivery. A pending row for
//! a target whose `tenants` filter leaves the new tenant out is failed
//! instead and stays with the old tenant, so nothing about the device in
//! its new tenant reaches the old tenant's targets.

use serde_json::{Value, json};

use super::Routes;
use crate::store::Result;
use crate::store::db::{Conn, on_conn};

/// Why a moved device's pending row was given up.
pub const MOVED_AWAY: &str = "the device moved to a tenant this target does not receive";

#[derive(sqlx::FromRow)]
struct Pending {
    notification_id: i64,
    target: String,
    payload: String,
}

/// Re-tags `device_id`'s notification rows for tenant `to` (see the module
/// docs); returns how many pending rows were given up.
///
/// # Errors
/// Database failures.
pub(crate) async fn retag_moved_device(
    mut conn: Conn<'_>,
    routes: &Routes,
    device_id: &str,
    to: &str,
) -> Result<u64> {
    let sql = format!(
        "SELECT notification_id, target, payload FROM notification \
         WHERE device_id = $1 AND status = 'pending'{}",
        conn.for_update()
    );
    let pending = on_conn!(conn.reborrow(), |c| {
        sqlx::query_as::<_, Pending>(sqlx::AssertSqlSafe(sql))
            .bind(device_id)
            .fetch_all(c)
            .await?
    });
    on_conn!(conn.reborrow(), |c| {
        sqlx::query(
            "UPDATE notification SET tenant_id = $1 WHERE device_id = $2 \
             AND (status = 'delivered' OR status = 'failed' AND COALESCE(last_error, '') <> $3)",
        )
        .bind(to)
        .bind(device_id)
        .bind(MOVED_AWAY)
        .execute(c)
        .await?;
    });
    let mut given_up = 0;
    for row in pending {
        if routes.receives_tenant(&row.target, to) {
            let payload = retag_payload(&row.payload, to);
            on_conn!(conn.reborrow(), |c| {
                sqlx::query(
                    "UPDATE notification SET tenant_id = $2, payload = $3 \
                     WHERE notification_id = $1",
                )
                .bind(row.notification_id)
                .bind(to)
                .bind(&payload)
                .execute(c)
                .await?;
            });
        } else {
            given_up += 1;
            on_conn!(conn.reborrow(), |c| {
                sqlx::query(
                    "UPDATE notification SET status = 'failed', last_error = $2 \
                     WHERE notification_id = $1",
                )
                .bind(row.notification_id)
                .bind(MOVED_AWAY)
                .execute(c)
                .await?;
            });
        }
    }
    Ok(given_up)
}

/// The row's data with `tenant_id` set to `to`; unparsable data (never
/// written by this code) is kept as it is.
fn retag_payload(payload: &str, to: &str) -> String {
    match serde_json::from_str::<Value>(payload) {
        Ok(mut data) if data.is_object() => {
            data["tenant_id"] = json!(to);
            data.to_string()
        }
        _ => payload.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retagged_data_names_the_new_tenant_and_keeps_the_rest() {
        let data = r#"{"tenant_id":"t1","device_id":"r1","changes":[{"component":"x"}]}"#;
        let out: Value = serde_json::from_str(&retag_payload(data, "t2")).expect("JSON");
        assert_eq!(out["tenant_id"], "t2");
        assert_eq!(out["device_id"], "r1");
        assert_eq!(out["changes"][0]["component"], "x");
        assert_eq!(retag_payload("not json", "t2"), "not json");
    }
}
