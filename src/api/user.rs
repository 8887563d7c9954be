//! A tenant's local accounts, managed by its admins (DESIGN.md §11):
//! list, create, change (role, password, disabled) and delete. Nobody
//! creates, changes or deletes an account above their own role, or gives a
//! role above their own; `super_admin` accounts have no tenant and are
//! managed with the CLI. A new password or disabling ends the account's
//! sessions at once. Every change is audited with its actor.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, Problem, TenantRouteErrors};
use super::path::TenantPath;
use crate::account::{Password, Role, Username, password};
use crate::store::account::{Account, AccountChange, NewAccount};

/// An account as the API shows it: never its password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// The sign-in name.
    pub username: String,
    /// The tenant.
    pub tenant_id: Option<String>,
    /// The role.
    #[schema(value_type = String, example = "viewer")]
    pub role: Role,
    /// Whether sign-in is refused.
    pub disabled: bool,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Account> for UserResponse {
    fn from(a: Account) -> Self {
        UserResponse {
            username: a.username,
            tenant_id: a.tenant_id,
            role: a.role,
            disabled: a.disabled,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// `GET …/users` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// The tenant's accounts by name.
    pub items: Vec<UserResponse>,
}

/// `POST …/users` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// `[A-Za-z0-9._@-]{1,64}`, unique across tenants.
    pub username: String,
    /// 8 to 1,024 bytes.
    pub password: String,
    /// viewer, operator or admin (at most the caller's own).
    #[schema(value_type = String, example = "viewer")]
    pub role: Role,
}

/// `PATCH …/users/{username}` body; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new role (at most the caller's own).
    #[schema(value_type = Option<String>, example = "operator")]
    pub role: Option<Role>,
    /// A new password; ends the account's sessions.
    pub password: Option<String>,
    /// Disable (ends the account's sessions) or enable.
    pub disabled: Option<bool>,
}

/// The `{username}` of the path.
fn username(req: &HttpRequest) -> Result<Username, ApiError> {
    let raw = req.match_info().get("username").unwrap_or_default();
    Username::parse(raw).map_err(|e| ApiError::BadId {
        what: "user name",
        reason: e.to_string(),
    })
}

/// A tenant's accounts.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/users",
    tag = "users",
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant's accounts", body = UserList),
        TenantRouteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    caller: Caller,
    tenant: TenantPath,
    state: web::Data<AppState>,
) -> Result<web::Json<UserList>, ApiError> {
    caller.require(&tenant.tid, Role::Admin)?;
    let accounts = state.store.list_accounts(Some(tenant.tid.as_str())).await?;
    let items = accounts.into_iter().map(UserResponse::from).collect();
    Ok(web::Json(UserList { items }))
}

/// Creates an account in the tenant.
#[utoipa::path(
    post,
    path = "/api/tenants/{tid}/users",
    tag = "users",
    params(TenantPath),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        TenantRouteErrors,
        (status = 409, description = "The name is taken (`user_exists`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    caller: Caller,
    tenant: TenantPath,
    state: web::Data<AppState>,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&tenant.tid, Role::Admin)?;
    let CreateUserRequest {
        username,
        password,
        role,
    } = body.into_inner();
    grantable(&caller, role)?;
    let username = Username::parse(&username).map_err(bad_body)?;
    let password_hash = hash(password).await?;
    let new = NewAccount {
        username,
        tenant_id: Some(tenant.tid.to_string()),
        role,
        password_hash,
    };
    let account = state.store.create_account(&new, Some(&caller.sub)).await?;
    Ok(HttpResponse::Created().json(UserResponse::from(account)))
}

/// Changes an account of the tenant.
#[utoipa::path(
    patch,
    path = "/api/tenants/{tid}/users/{username}",
    tag = "users",
    params(TenantPath, ("username" = String, Path, description = "User name")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "Changed", body = UserResponse),
        TenantRouteErrors,
        (status = 404, description = "No such account in the tenant (`user_not_found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update_user(
    caller: Caller,
    tenant: TenantPath,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<UpdateUserRequest>,
) -> Result<web::Json<UserResponse>, ApiError> {
    let name = username(&req)?;
    caller.require(&tenant.tid, Role::Admin)?;
    tenant_account(&state, &caller, &tenant, &name).await?;
    let UpdateUserRequest {
        role,
        password,
        disabled,
    } = body.into_inner();
    if let Some(role) = role {
        grantable(&caller, role)?;
    }
    let password_hash = match password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let change = AccountChange {
        role,
        disabled,
        password_hash,
    };
    let account = state
        .store
        .update_account(name.as_str(), &change, Some(&caller.sub))
        .await?;
    Ok(web::Json(account.into()))
}

/// Deletes an account of the tenant (its sessions end).
#[utoipa::path(
    delete,
    path = "/api/tenants/{tid}/users/{username}",
    tag = "users",
    params(TenantPath, ("username" = String, Path, description = "User name")),
    responses(
        (status = 204, description = "Deleted"),
        TenantRouteErrors,
        (status = 404, description = "No such account in the tenant (`user_not_found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    caller: Caller,
    tenant: TenantPath,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = username(&req)?;
    caller.require(&tenant.tid, Role::Admin)?;
    tenant_account(&state, &caller, &tenant, &name).await?;
    state
        .store
        .delete_account(name.as_str(), Some(&caller.sub))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's account `name`, which the caller's role reaches. Another
/// tenant's account looks like none.
async fn tenant_account(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantPath,
    name: &Username,
) -> Result<Account, ApiError> {
    let account = state.store.account(name.as_str()).await?;
    if account.tenant_id.as_deref() != Some(tenant.tid.as_str()) {
        return Err(ApiError::UserNotFound);
    }
    if account.role > caller.role {
        return Err(ApiError::Forbidden("the account's role is above yours"));
    }
    Ok(account)
}

/// Whether the caller may give `role`: not above its own, and never
/// `super_admin` (which has no tenant).
fn grantable(caller: &Caller, role: Role) -> Result<(), ApiError> {
    if role > caller.role {
        return Err(ApiError::Forbidden("cannot give a role above your own"));
    }
    if role == Role::SuperAdmin {
        return Err(ApiError::Forbidden(
            "super_admin accounts are managed with the CLI",
        ));
    }
    Ok(())
}

fn bad_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest {
        code: "bad_body",
        detail: e.to_string(),
    }
}

/// Validates and hashes a password on the blocking pool.
async fn hash(password: String) -> Result<String, ApiError> {
    let password = Password::new(password).map_err(bad_body)?;
    web::block(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing a password: {e}")))?
        .map_err(ApiError::Unexpected)
}
