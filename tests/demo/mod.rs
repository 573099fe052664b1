//! The demo's application, on either framework, for the end-to-end tests: the same routes
//! (`examples/demo/routes.rs`) on axum (`examples/demo/app.rs`) or actix-web
//! (`examples/actix_demo/app.rs`), served on a loopback port.

#![allow(dead_code, unused_imports)]

#[path = "../../examples/actix_demo/app.rs"]
pub mod actix_app;
#[path = "../../examples/demo/app.rs"]
pub mod app;
#[path = "../../examples/demo/routes.rs"]
pub mod routes;
pub mod scenarios;

pub use routes::{DemoSession, PREFERENCES};
use session::http::{OutagePolicy, SessionBackend};

/// The web framework a test serves the demo with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    Axum,
    Actix,
}

/// Serves the demo over `backend` with `framework` on a loopback port; gives its base URL.
/// The verification code and sudo mode live for the demo's defaults
/// ([`routes::DEFAULT_CODE_TTL`], [`routes::DEFAULT_SUDO_TTL`]).
pub async fn serve<B: routes::DemoStore>(framework: Framework, backend: B, outage: OutagePolicy) -> String {
    let context = routes::Context::new("test store", &backend);
    match framework {
        Framework::Axum => crate::common::http::serve(app::router(backend, outage, context).unwrap()).await,
        Framework::Actix => {
            let middleware = actix_app::middleware(backend, outage, context.sudo_ttl).unwrap();
            crate::common::http::serve_actix!(move || actix_app::app(middleware.clone(), context.clone()))
        }
    }
}

/// One `#[tokio::test]` per framework for each scenario `NAME(framework)`:
/// `axum::NAME` and `actix::NAME`.
macro_rules! on_both_frameworks {
    ($($name:ident,)+) => {
        mod axum {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::demo::Framework::Axum).await;
                }
            )+
        }
        mod actix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::demo::Framework::Actix).await;
                }
            )+
        }
    };
}
pub(crate) use on_both_frameworks;
