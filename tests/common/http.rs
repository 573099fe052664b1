//! A real HTTP server on a loopback port, and clients for it.

use std::net::SocketAddr;

use axum::Router;
use reqwest::{Client, Method, Response, StatusCode, header};
use serde_json::Value;

/// Serves `app` on an ephemeral loopback port until the test's runtime ends.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

/// A client that keeps cookies, like a browser.
pub fn browser() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

/// A client that sends only the cookies it is told to.
pub fn bare() -> Client {
    Client::new()
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// The value the response sets for cookie `name`, if it sets one.
pub fn cookie_value(response: &Response, name: &str) -> Option<String> {
    set_cookies(response).iter().find_map(|header| {
        let (pair, _) = header.split_once(';').unwrap_or((header, ""));
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// GETs `url` and returns the body as text, whatever the status.
pub async fn get_text(client: &Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// GETs `url`, expects 200, and returns the JSON body.
pub async fn get_json(client: &Client, url: String) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Sends `body` as JSON with `method` to `url`.
pub async fn send_json(client: &Client, method: Method, url: String, body: Value) -> Response {
    client.request(method, url).json(&body).send().await.unwrap()
}

/// Serves the actix-web app that the factory (`move || App::new()…`) builds on an
/// ephemeral loopback port, with two workers, until the test process ends; gives its base URL.
macro_rules! serve_actix {
    ($factory:expr) => {{
        let listener = ::std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ::actix_web::HttpServer::new($factory)
            .workers(2)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        ::tokio::spawn(server);
        format!("http://{addr}")
    }};
}
pub(crate) use serve_actix;
