//! The responses the session layers answer with instead of the application's: 503 when the
//! store is unreachable, 500 when a session cannot be saved, 401 from the guard.

use http::{HeaderValue, Response, StatusCode, header};

use crate::Error;

/// 503 when the store is unavailable, 413 when the session grew too large, else 500.
pub(crate) fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::RecordTooLarge { .. } | Error::CookieTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        error if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An empty response with `status`, never cached.
pub(super) fn status_response<ResBody: Default>(status: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(ResBody::default());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
