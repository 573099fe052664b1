//! The demo application on actix-web: `cargo run --example actix_demo`, then open
//! <http://127.0.0.1:3000>. The same routes, page, stores and environment variables as the
//! axum demo (listed in `examples/demo/main.rs`), from the same code: `routes.rs` and
//! `stores.rs` of `examples/demo/`; only `app.rs` here is actix-web's.

#[path = "../demo/routes.rs"]
mod routes;
#[path = "../demo/stores.rs"]
mod stores;

mod app;

use session::http::OutagePolicy;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    stores::main(run()).await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The SQL stores' expiry task runs as long as `_expiry` lives: until the server stops.
    let stores::Demo {
        addr,
        backend,
        context,
        expiry: _expiry,
    } = stores::from_env().await?;
    let label = context.store.clone();
    let middleware = app::middleware(backend, OutagePolicy::FailClosed, context.sudo_ttl)?;
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("session demo ({label}, actix-web) on http://{}", listener.local_addr()?);
    actix_web::HttpServer::new(move || app::app(middleware.clone(), context.clone()))
        .listen(listener)?
        .run()
        .await?;
    Ok(())
}
