//! The demo on axum: the shared routes (`routes.rs`) behind the tower session layer, so
//! `main.rs` and the end-to-end tests serve exactly the same application.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{MethodRouter, get, post, put},
};
use session::http::{LazySession, OutagePolicy, RequireSessionLayer, SessionLayer};

use super::routes::{self, Answer, Body, Context, DemoSession, DemoStore, Method, ROUTES, SudoSession};

/// The demo application over `backend` (and, for sudo mode, the sub-session backend it
/// makes); `context.store` names it on the page.
///
/// # Errors
///
/// When the sudo cookie's configuration is refused.
pub fn router<B: DemoStore>(backend: B, outage: OutagePolicy, context: Context) -> Result<Router, session::Error> {
    let sudo = backend.sudo(context.sudo_ttl)?;
    let context = Arc::new(context);
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for route in ROUTES {
        let context = context.clone();
        let handler = move |session: LazySession<DemoSession>,
                            sudo: LazySession<SudoSession>,
                            param: Option<Path<String>>,
                            body: Bytes| async move {
            let param = param.map(|Path(param)| param);
            respond(routes::handle(route.action, session, sudo, &context, param, &body).await)
        };
        let method: MethodRouter = match route.method {
            Method::Get => get(handler),
            Method::Post => post(handler),
            Method::Put => put(handler),
        };
        if route.logged_in_only {
            guarded = guarded.route(route.path, method);
        } else {
            open = open.route(route.path, method);
        }
    }
    // Two session types per request: the login session and its sudo sub-session.
    Ok(open
        .merge(guarded.layer(RequireSessionLayer::new(routes::logged_in)))
        .layer(SessionLayer::new(sudo).on_store_outage(outage))
        .layer(SessionLayer::new(backend).on_store_outage(outage))
        .layer(axum::middleware::map_response(json_errors)))
}

fn respond(answer: Answer) -> Response {
    match answer {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match reply.body {
                Body::Json(value) => (status, Json(value)).into_response(),
                Body::Html(page) => (status, Html(page)).into_response(),
            }
        }
        Err(error) => error.into_response(),
    }
}

/// The session layer answers its own errors (413, 503, 500) with an empty body; the demo
/// speaks JSON, so they get one.
async fn json_errors(response: Response) -> Response {
    // The body's own size, not Content-Length: axum sets that header only when it sends.
    let empty = axum::body::HttpBody::size_hint(response.body()).exact() == Some(0);
    let Some(body) = routes::layer_error_body(response.status().as_u16(), empty) else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}
