//! Authentication for every route but `/health` (and the probes and webhooks): the bearer
//! token names a principal ([`crate::principals`]); the request carries its [`Caller`].

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::principals::Caller;
use crate::state::AppState;

/// Rejects requests whose `Authorization: Bearer <token>` names no principal (when any token
/// is configured), and gives the others their [`Caller`] as a request extension. The token is
/// compared in constant time with every known one.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let principal = state
        .principals
        .authenticate(presented)
        .ok_or(ApiError::Unauthorized)?;
    let caller = Caller::of(principal, req.headers());
    req.extensions_mut().insert(caller.clone());
    let mut response = next.run(req).await;
    // For the audit layer outside this one.
    response.extensions_mut().insert(caller);
    Ok(response)
}
