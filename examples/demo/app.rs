//! The demo's routes (listed in `main.rs`), generic over the session backend, so `main.rs` and the
//! end-to-end tests serve exactly the same application.

use axum::{
    Json, Router,
    extract::{Path, rejection::JsonRejection},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};
use session::{
    Error, Flash, Session, SessionData,
    http::{LazySession, OutagePolicy, RequireSessionLayer, SessionBackend, SessionLayer},
};

/// Everything the demo remembers about a visitor.
#[derive(SessionData, Debug)]
pub struct DemoSession {
    pub user: Option<String>,
    pub visits: u64,
    #[session(flash)]
    pub notice: Flash<String>,
    pub theme: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
    pub font_size: Option<String>,
    pub density: Option<String>,
    pub sidebar: Option<String>,
    pub notifications: Option<String>,
}

/// The preference names of `PUT /api/prefs/{name}`, in display order.
pub const PREFERENCES: [&str; 8] = [
    "theme",
    "language",
    "timezone",
    "currency",
    "font_size",
    "density",
    "sidebar",
    "notifications",
];

/// The demo application over `backend`.
pub fn router<B: SessionBackend<DemoSession>>(backend: B, outage: OutagePolicy) -> Router {
    let private = Router::new()
        .route("/api/private", get(private))
        .layer(RequireSessionLayer::new(|session: &Session<DemoSession>| {
            session.user().is_some()
        }));
    Router::new()
        .route("/", get(index))
        .route("/api/visit", get(visit))
        .route("/api/peek", get(peek))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/flash", post(flash))
        .route("/api/prefs", get(prefs))
        .route("/api/prefs/{name}", put(set_pref))
        .merge(private)
        .layer(SessionLayer::new(backend).on_store_outage(outage))
        .layer(axum::middleware::map_response(json_errors))
}

/// The session layer answers its own errors (413, 503, 500) with an empty body; the demo
/// speaks JSON, so they get one.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let empty = response
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .is_none_or(|length| length == "0");
    if !(status.is_client_error() || status.is_server_error()) || !empty || status == StatusCode::UNAUTHORIZED {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the session would grow past its size limit; nothing was stored",
        StatusCode::SERVICE_UNAVAILABLE => "the session store is unavailable",
        _ => "the session could not be saved",
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut json = Json(json!({ "error": error })).into_response();
    for (name, value) in &parts.headers {
        json.headers_mut().insert(name.clone(), value.clone());
    }
    json.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    *json.status_mut() = status;
    json
}

fn state(session: &Session<DemoSession>) -> Value {
    json!({ "visits": session.visits(), "user": session.user(), "notice": session.notice() })
}

async fn visit(session: LazySession<DemoSession>) -> Result<Json<Value>, Error> {
    let mut session = session.load().await?;
    *session.visits_mut() += 1;
    Ok(Json(state(&session)))
}

async fn peek(session: LazySession<DemoSession>) -> Result<Json<Value>, Error> {
    Ok(Json(match session.existing().await? {
        Some(mut session) => {
            // Reading must not consume the flash: keep it for the request it was meant for.
            session.keep_notice();
            state(&session)
        }
        None => json!({ "visits": 0, "user": null, "notice": null }),
    }))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(session: LazySession<DemoSession>, body: Result<Json<Login>, JsonRejection>) -> Response {
    let Ok(Json(Login { user })) = body else {
        return bad_request("expected {\"user\": \"name\"}");
    };
    let user = user.trim().to_owned();
    if user.is_empty() || user.len() > 64 {
        return bad_request("user must be 1 to 64 characters");
    }
    let result = async {
        let mut session = session.load().await?;
        session.set_user(Some(user.clone()));
        // A new ID on every privilege change: a planted ID never becomes a logged-in one.
        session.regenerate_id()?;
        session.set_notice(format!("Welcome {user}"));
        Ok::<_, Error>(Json(json!({ "user": user })))
    };
    result.await.into_response()
}

async fn logout(session: LazySession<DemoSession>) -> Result<Json<Value>, Error> {
    if let Some(mut session) = session.existing().await? {
        session.delete();
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct FlashBody {
    notice: String,
}

async fn flash(session: LazySession<DemoSession>, body: Result<Json<FlashBody>, JsonRejection>) -> Response {
    let Ok(Json(FlashBody { notice })) = body else {
        return bad_request("expected {\"notice\": \"text\"}");
    };
    let result = async {
        session.load().await?.set_notice(notice);
        Ok::<_, Error>(Json(json!({})))
    };
    result.await.into_response()
}

async fn private(session: LazySession<DemoSession>) -> Result<Json<Value>, Error> {
    let user = session.existing().await?.and_then(|session| session.user().clone());
    Ok(Json(json!({ "user": user })))
}

async fn prefs(session: LazySession<DemoSession>) -> Result<Json<Value>, Error> {
    let session = session.existing().await?;
    let mut out = serde_json::Map::new();
    for name in PREFERENCES {
        let value = session.as_ref().and_then(|session| preference(session, name).clone());
        out.insert(name.to_owned(), value.map_or(Value::Null, Value::String));
    }
    Ok(Json(Value::Object(out)))
}

fn preference<'a>(session: &'a Session<DemoSession>, name: &str) -> &'a Option<String> {
    match name {
        "theme" => session.theme(),
        "language" => session.language(),
        "timezone" => session.timezone(),
        "currency" => session.currency(),
        "font_size" => session.font_size(),
        "density" => session.density(),
        "sidebar" => session.sidebar(),
        _ => session.notifications(),
    }
}

#[derive(Deserialize)]
struct PrefBody {
    value: String,
}

async fn set_pref(
    session: LazySession<DemoSession>,
    Path(name): Path<String>,
    body: Result<Json<PrefBody>, JsonRejection>,
) -> Response {
    if !PREFERENCES.contains(&name.as_str()) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("unknown preference {name:?}") })),
        )
            .into_response();
    }
    let Ok(Json(PrefBody { value })) = body else {
        return bad_request("expected {\"value\": \"text\"}");
    };
    let result = async {
        let mut session = session.load().await?;
        // Each preference is its own field: concurrent requests setting different ones all keep their change.
        let value = Some(value);
        match name.as_str() {
            "theme" => session.set_theme(value),
            "language" => session.set_language(value),
            "timezone" => session.set_timezone(value),
            "currency" => session.set_currency(value),
            "font_size" => session.set_font_size(value),
            "density" => session.set_density(value),
            "sidebar" => session.set_sidebar(value),
            _ => session.set_notifications(value),
        }
        Ok::<_, Error>(Json(json!({})))
    };
    result.await.into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn index(session: LazySession<DemoSession>) -> Result<Html<String>, Error> {
    let (user, visits, notice) = match session.existing().await? {
        Some(session) => (session.user().clone(), *session.visits(), session.notice().cloned()),
        None => (None, 0, None),
    };
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let user_line = match &user {
        Some(user) => format!("Logged in as <strong>{}</strong>.", escape(user)),
        None => "Not logged in.".to_owned(),
    };
    let notice_line = notice
        .map(|notice| format!("<p class=\"notice\">{}</p>", escape(&notice)))
        .unwrap_or_default();
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>session demo</title></head>
<body>
<h1>session demo</h1>
{notice_line}
<p>{user_line} Visits: {visits}.</p>
<form id="login"><input name="user" placeholder="name" required> <button>Log in</button></form>
<form id="logout"><button>Log out</button></form>
<p><a href="/api/visit">/api/visit</a> · <a href="/api/peek">/api/peek</a> · <a href="/api/prefs">/api/prefs</a> · <a href="/api/private">/api/private</a></p>
<script>
const post = (url, body) => fetch(url, {{method: "POST", headers: {{"content-type": "application/json"}}, body: JSON.stringify(body)}}).then(() => location.reload());
document.getElementById("login").onsubmit = (e) => {{ e.preventDefault(); post("/api/login", {{user: e.target.user.value}}); }};
document.getElementById("logout").onsubmit = (e) => {{ e.preventDefault(); post("/api/logout", {{}}); }};
</script>
</body></html>"#
    )))
}
