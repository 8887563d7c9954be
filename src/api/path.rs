//! Path and query extractors that validate ids before any handler runs:
//! tenant and device ids through [`TenantId::parse`]/[`DeviceId::parse`]
//! (DESIGN.md §2), snapshot ids as positive integers. A bad id is a `400`
//! problem with code `bad_id`, whose detail names the id but never echoes it.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::id::{DeviceId, TenantId};

/// A snapshot id: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotId(pub i64);

impl SnapshotId {
    /// Parses a positive decimal integer.
    ///
    /// # Errors
    /// A fixed message (the input is not echoed).
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok(SnapshotId(n)),
            _ => Err("must be a positive integer"),
        }
    }
}

impl<'de> Deserialize<'de> for SnapshotId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SnapshotId::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn segment<'a>(req: &'a HttpRequest, name: &str) -> Result<&'a str, ApiError> {
    req.match_info()
        .get(name)
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("BUG: the route has no {{{name}}}")))
}

fn tenant(req: &HttpRequest) -> Result<TenantId, ApiError> {
    TenantId::parse(segment(req, "tid")?).map_err(|e| ApiError::bad_id("tenant id", &e))
}

fn device(req: &HttpRequest) -> Result<DeviceId, ApiError> {
    DeviceId::parse(segment(req, "did")?).map_err(|e| ApiError::bad_id("device id", &e))
}

fn snapshot(req: &HttpRequest) -> Result<SnapshotId, ApiError> {
    SnapshotId::parse(segment(req, "sid")?).map_err(|reason| ApiError::BadId {
        what: "snapshot id",
        reason: reason.into(),
    })
}

/// `/api/tenants/{tid}/…`
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub tid: TenantId,
}

/// `/api/tenants/{tid}/devices/{did}/…`
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DevicePath {
    /// Tenant id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub tid: TenantId,
    /// Device id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub did: DeviceId,
}

/// `/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/…`
#[derive(Debug, Clone, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SnapshotPath {
    /// Tenant id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub tid: TenantId,
    /// Device id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub did: DeviceId,
    /// Snapshot id.
    #[param(value_type = i64, minimum = 1)]
    pub sid: SnapshotId,
}

impl FromRequest for TenantPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(tenant(req).map(|tid| TenantPath { tid }))
    }
}

impl FromRequest for DevicePath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            Ok(DevicePath {
                tid: tenant(req)?,
                did: device(req)?,
            })
        })())
    }
}

impl FromRequest for SnapshotPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            Ok(SnapshotPath {
                tid: tenant(req)?,
                did: device(req)?,
                sid: snapshot(req)?,
            })
        })())
    }
}

/// Largest `limit` of a page.
pub const MAX_LIMIT: u32 = 200;
/// `limit` when none is given.
pub const DEFAULT_LIMIT: u32 = 50;

/// `?limit=&before=`: cursor pagination, newest first.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–200; 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only items with ids below this: the previous page's `next_before`.
    pub before: Option<i64>,
}

impl PageQuery {
    /// The page size.
    ///
    /// # Errors
    /// `400 bad_query` for a limit outside 1–200.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=MAX_LIMIT) => Ok(n),
            Some(_) => Err(ApiError::BadRequest {
                code: "bad_query",
                detail: format!("limit must be between 1 and {MAX_LIMIT}"),
            }),
        }
    }
}

/// Cuts a page fetched with `limit + 1` rows down to `limit` and returns the
/// cursor of the next page: the last item's id when more rows exist.
pub fn paginate<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let limit = limit as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(id) } else { None };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_positive_integers() {
        assert_eq!(SnapshotId::parse("7"), Ok(SnapshotId(7)));
        for bad in ["0", "-1", "1.5", "abc", "", "99999999999999999999", "1e3"] {
            assert!(SnapshotId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paginate_sets_the_cursor_only_when_more_rows_exist() {
        assert_eq!(paginate(vec![5, 4, 3], 2, |x| *x), (vec![5, 4], Some(4)));
        assert_eq!(paginate(vec![5, 4], 2, |x| *x), (vec![5, 4], None));
        assert_eq!(paginate(Vec::<i64>::new(), 2, |x| *x), (vec![], None));
    }

    #[test]
    fn limits_outside_the_range_are_rejected() {
        let q = |limit| PageQuery {
            limit,
            before: None,
        };
        assert_eq!(q(None).limit().expect("default"), DEFAULT_LIMIT);
        assert_eq!(q(Some(200)).limit().expect("max"), 200);
        assert!(q(Some(0)).limit().is_err());
        assert!(q(Some(201)).limit().is_err());
    }
}
