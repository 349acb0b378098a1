//! Extractors whose failures answer like every other error instead of with axum's plain-text
//! rejections: the runner behind a bearer token, the administrator, a size-limited JSON body (both for the API), and
//! path parameters, answered as JSON for the API ([`ApiPath`]) and as a page for people
//! ([`PagePath`]).

use super::AppState;
use crate::error::{ApiError, PageError};
use crate::storage::{Runner, RunnerAuth};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The runner whose token the request carries (`Authorization: Bearer <token>`, the scheme in
/// any letter case): 401 without a known token, 403 for a disabled runner.
impl FromRequestParts<AppState> for Runner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        match state.storage.authenticate(token).await? {
            RunnerAuth::Valid(runner) => Ok(runner),
            RunnerAuth::Disabled(name) => Err(ApiError::RunnerDisabled(name)),
            RunnerAuth::Unknown => Err(ApiError::Unauthorized),
        }
    }
}

/// The administrator, proven by the server's admin token: 401 otherwise (and always when the
/// server has none, so the administration API is off by default).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match (presented, state.config.admin_token.as_deref()) {
            (Some(given), Some(expected))
                if !expected.is_empty()
                    && bool::from(subtle::ConstantTimeEq::ct_eq(
                        given.as_bytes(),
                        expected.as_bytes(),
                    )) =>
            {
                Ok(Admin)
            }
            _ => Err(ApiError::AdminOnly),
        }
    }
}

/// The token of a `Bearer` credential; auth schemes are case-insensitive (RFC 9110 §11.1).
fn bearer_token(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A JSON body read within `max_body_bytes`: 413 over it (by `Content-Length` or as it
/// arrives), 408 when it stops arriving, 400 when it is not JSON.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                // The body error wraps its cause at some depth: look through the whole chain.
                let caused_by = |is: fn(&(dyn std::error::Error + 'static)) -> bool| {
                    std::iter::successors(std::error::Error::source(&e), |c| c.source()).any(is)
                };
                if caused_by(|c| c.is::<http_body_util::LengthLimitError>()) {
                    ApiError::PayloadTooLarge { limit }
                } else if caused_by(|c| c.is::<tower_http::timeout::TimeoutError>()) {
                    ApiError::RequestTimeout
                } else {
                    ApiError::BadRequest(format!("could not read the request body: {e}"))
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))
    }
}

/// Path parameters for the API: one it cannot read is a JSON 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        path(parts, state).await.map(ApiPath)
    }
}

/// The client's address, for limits per client. The accept loop records it on every request;
/// a request without one (a router driven in process) counts as the unspecified address.
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(
            peer.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        ))
    }
}

/// Path parameters for a page: one it cannot read is the 400 error page.
pub struct PagePath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PagePath<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        Ok(PagePath(path(parts, state).await?))
    }
}

async fn path<S: Send + Sync, T: DeserializeOwned + Send>(
    parts: &mut Parts,
    state: &S,
) -> Result<T, ApiError> {
    match Path::<T>::from_request_parts(parts, state).await {
        Ok(Path(value)) => Ok(value),
        Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for credentials in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc "] {
            assert_eq!(bearer_token(credentials), Some("abc"), "{credentials}");
        }
        for credentials in ["Basic abc", "Bearerabc", "abc", "Token abc"] {
            assert_eq!(bearer_token(credentials), None, "{credentials}");
        }
    }
}
