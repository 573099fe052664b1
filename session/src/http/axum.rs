//! axum glue: the extractor, and errors as responses.

use axum::{
    extract::FromRequestParts,
    response::{IntoResponse, Response},
};
use http::{StatusCode, request::Parts};

use super::lazy::{LazySession, MissingSessionLayer};
use crate::{Error, SessionData};

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync, T: SessionData> FromRequestParts<S> for LazySession<T> {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(MissingSessionLayer::of::<T>())
    }
}

/// 503 when the store is unavailable, 500 otherwise; the details go to the log, not the client.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = super::response::status_of(&self);
        tracing::error!(error = %self, "session error");
        (status, status.canonical_reason().unwrap_or("error")).into_response()
    }
}
