//! Bearer-token authentication for every route but `/health`.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Rejects requests without `Authorization: Bearer <OPENCLAW_GATEWAY_TOKEN>` when a token is
/// configured. The comparison takes the same time wherever the first wrong byte is.
pub async fn require_bearer(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config.auth_token {
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
        let ok: bool = presented
            .as_bytes()
            .ct_eq(expected.expose().as_bytes())
            .into();
        if !ok {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}
