//! Extractors that turn bad input into [`ApiError`]s naming the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. 415 without a JSON content type, 413 over the body limit, 400 naming the
/// field (as a path such as `metadata.x`) when the JSON does not fit `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(usize::MAX);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest {
                    field: None,
                    message: format!("cannot read the request body: {rejection}"),
                }
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => {
                de.end().map_err(|e| ApiError::BadRequest {
                    field: None,
                    message: format!("invalid JSON body: {e}"),
                })?;
                Ok(Self(v))
            }
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() || path == "." {
                    Err(ApiError::BadRequest {
                        field: None,
                        message: format!("invalid JSON body: {inner}"),
                    })
                } else {
                    Err(ApiError::field(&path, format!("{path}: {inner}")))
                }
            }
        }
    }
}

/// The configured body limit, put in request extensions so extractors can name it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A query string. 400 as JSON (like every other error) when it does not fit `T`, e.g. a
/// parameter given twice; axum's own `Query` answers such requests in plain text.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("invalid query string: {}", e.body_text()),
            })
    }
}
