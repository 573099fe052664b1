//! The demo application: `cargo run --example demo`, then open <http://127.0.0.1:3000>.
//! It is the project's living documentation and the target of its end-to-end tests
//! (`tests/http_demo.rs`). `cargo run --example actix_demo` serves the same application on
//! actix-web: the routes are `routes.rs`, framework-neutral; `app.rs` puts them on axum,
//! `examples/actix_demo/app.rs` on actix-web; `stores.rs` reads the environment.
//!
//! Routes (JSON in and out, except `/`):
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | the page (`page.html`, no external assets): who is logged in, visits, the flash notice, the eight preferences as a form, the session's expiry as a live countdown, the store; it drives this API with `fetch()` |
//! | `GET /api/visit` | increments `visits`; answers `{"visits":N,"user":U\|null,"notice":F\|null}`, `notice` being the flash visible in this request |
//! | `GET /api/peek` | the same fields, read only: never changes the session, never sets a cookie |
//! | `GET /api/session` | read only, like `peek`: `{"user":U\|null,"expires_in_secs":N\|null,"idle_expires_in_secs":N\|null,"absolute_expires_in_secs":N\|null,"expires_at_ms":N\|null,"store":"memory store","preferences":[...],"features":{...}}`, `features` saying which optional routes exist (remember-me, devices, ...) |
//! | `POST /api/login` `{"user":"alice","remember":false}` | sets the user, regenerates the ID, sets the flash notice `"Welcome alice"` for the next request; answers `{"user":"alice"}`. Not remembered (the default), the cookie has neither `Max-Age` nor `Expires` and the configured timeouts apply; remembered, `Max-Age` and both server-side deadlines are `SESSION_DEMO_REMEMBER_SECS` from now |
//! | `POST /api/logout` | deletes the session and expires the cookie; answers `{}` |
//! | `POST /api/flash` `{"notice":"..."}` | sets the flash notice for the next request; answers `{}` |
//! | `GET /api/private` | 401 without a logged-in session, else `{"user":U}` |
//! | `PUT /api/prefs/{name}` `{"value":"..."}` | sets one of eight preferences (theme, language, timezone, currency, font_size, density, sidebar, notifications), each its own typed field; answers `{}`; an unknown name is 404 |
//! | `GET /api/prefs` | all eight preferences (null when unset) |
//! | `PUT /api/code` `{"code":"..."}` | keeps a verification code in the session's expiring slot for `SESSION_DEMO_CODE_TTL_SECS`; answers `{}` |
//! | `GET /api/code` | read only, like `peek`: `{"code":S\|null}`, null once the code's time to live has passed, while the session and its other fields live on |
//! | `POST /api/sudo` | logged in only (401 otherwise): starts sudo mode, a sub-session with its own cookie (`sudo`, or `__Host-sudo` with `SESSION_DEMO_SECURE=1`) lasting `SESSION_DEMO_SUDO_SECS`, bound to this session; answers `{}` |
//! | `GET /api/sudo` | 200 `{"sudo":true}` while that sub-session is live and bound to the request's current session, else 403 `{"sudo":false}`: logging out (which deletes it too), a new login, the parent's expiry, another user's session or a forged sudo cookie all end it |
//! | `GET /api/devices` | logged in only (401 otherwise): `{"devices":[{"current":bool,"created_ms":N,"last_access_ms":N,"user_agent":S\|null}]}`, every live session of this user across all clients and nodes; the cookie store answers 501 (cookies cannot be listed) |
//! | `POST /api/logout/others` | logged in only: every other session of this user ends at once, on every node; this one lives on; answers `{"ended":N\|null}` (null on the cookie store, which cannot count them) |
//! | `POST /api/logout/everywhere` | logged in only: every session of this user ends, this one included (the response expires the cookie); answers `{}`. On the cookie store both logouts revoke by user: the old cookies are refused on this process at once, on others sharing the Redis of `REDIS_URL` within a second |
//!
//! Environment:
//!
//! - `SESSION_DEMO_ADDR`: where to listen (default `127.0.0.1:3000`);
//! - `SESSION_DEMO_STORE`: `memory` (the default), `cookie`, `redis`, `clustered` (a
//!   local cache per demo process in front of Redis, kept coherent across processes: run
//!   several on different `SESSION_DEMO_ADDR`s behind one load balancer), `postgres`,
//!   `sqlite` or `mysql` (the SQL stores: the table `sessions` is created if missing, and
//!   expired rows are deleted every 5 minutes);
//! - `DATABASE_URL`: for `postgres` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//!   and `mysql` (default `mysql://root@127.0.0.1:3306/test`; MariaDB works too);
//! - `SESSION_DEMO_SQLITE_PATH`: for `sqlite`, the database file, created if missing
//!   (default `session-demo.db` in the working directory);
//! - `REDIS_URL`: for `redis` and `clustered` (default `redis://127.0.0.1:6379`;
//!   `rediss://` and passwords in the URL work for `redis`); for `cookie`, if set (or
//!   `REDIS_CLUSTER_URLS`), where the revocation generations live, so that several demo
//!   processes share "log out everywhere" (unset: in this process);
//! - `REDIS_CLUSTER_URLS`: for `redis` and `clustered` on a Redis Cluster instead, a
//!   comma-separated list of node URLs (e.g.
//!   `redis://127.0.0.1:7000,redis://127.0.0.1:7001`); it takes precedence over `REDIS_URL`;
//! - `SESSION_SECRET`: the cookie store's key material, base64 or text of at least 32
//!   bytes (unset: a random secret per process, with a warning);
//! - `SESSION_IDLE_TIMEOUT_SECS` (default 1800), `SESSION_ABSOLUTE_TIMEOUT_SECS` (default
//!   86400);
//! - `SESSION_DEMO_REMEMBER_SECS` (default 2592000, 30 days): how long a remembered login
//!   lasts, unused or not;
//! - `SESSION_DEMO_CODE_TTL_SECS` (default 120): how long `PUT /api/code` keeps a code;
//! - `SESSION_DEMO_SUDO_SECS` (default 300): how long sudo mode (`POST /api/sudo`) lasts;
//! - `SESSION_MAX_BYTES`: the largest a session may be in a server-side store (default
//!   65536); a change past it, or past the 4096-byte cookie, answers 413 with a JSON error
//!   and leaves the stored session as it was;
//! - `SESSION_DEMO_SECURE=1`: the production cookie preset (`__Host-`, `Secure`: needs
//!   HTTPS in front).

mod app;
mod routes;
mod stores;

use std::net::SocketAddr;

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
    let app = app::router(backend, OutagePolicy::FailClosed, context)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("session demo ({label}) on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
