//! The demo on actix-web: the shared routes (`examples/demo/routes.rs`) behind the session
//! middleware, so `main.rs` and the end-to-end tests serve exactly the same application as
//! the axum demo.

use actix_web::{
    App, HttpRequest, HttpResponse, ResponseError,
    body::{BodySize, MessageBody},
    dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    web,
};
use session::http::{
    LazySession, OutagePolicy,
    actix::{RequireSession, SessionMiddleware},
};

use super::routes::{self, Answer, Body, Context, DemoSession, DemoStore, Method, ROUTES, Route, SudoSession};

/// The session middlewares: the login session's over `backend`, and the sudo
/// sub-session's over the backend it makes. Clone them into every worker's [`app`].
pub struct Middlewares<B: DemoStore> {
    session: SessionMiddleware<DemoSession, B>,
    sudo: SessionMiddleware<SudoSession, B::Sudo>,
}

impl<B: DemoStore> Clone for Middlewares<B> {
    fn clone(&self) -> Self {
        Self {
            session: self.session.clone(),
            sudo: self.sudo.clone(),
        }
    }
}

/// The middlewares over `backend`, sudo mode lasting `sudo_ttl`.
///
/// # Errors
///
/// When the sudo cookie's configuration is refused.
pub fn middleware<B: DemoStore>(
    backend: B,
    outage: OutagePolicy,
    sudo_ttl: std::time::Duration,
) -> Result<Middlewares<B>, session::Error> {
    Ok(Middlewares {
        sudo: SessionMiddleware::new(backend.sudo(sudo_ttl)?).on_store_outage(outage),
        session: SessionMiddleware::new(backend).on_store_outage(outage),
    })
}

/// The demo application behind `middlewares`; `context.store` names the store on the page.
pub fn app<B: DemoStore>(
    middlewares: Middlewares<B>,
    context: Context,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let mut app = App::new().app_data(web::Data::new(context));
    let mut paths: Vec<&str> = ROUTES.iter().map(|route| route.path).collect();
    paths.dedup();
    // One resource per path, with a route per method: actix-web answers 405 from the
    // first resource whose path matches.
    for path in paths {
        let routes = ROUTES.iter().filter(|route| route.path == path);
        let mut resource = web::resource(path);
        for route in routes {
            let to = method(route).to(handler(*route));
            // Guarded per route: one path may have an open and a guarded method (`/api/sudo`).
            resource = resource.route(if route.logged_in_only {
                to.wrap(RequireSession::new(routes::logged_in))
            } else {
                to
            });
        }
        app = app.service(resource);
    }
    // Two session types per request: the login session and its sudo sub-session.
    app.wrap(middlewares.sudo)
        .wrap(middlewares.session)
        .wrap_fn(|request, service| {
            let response = service.call(request);
            async move { Ok(json_errors(response.await?)) }
        })
}

fn method(route: &Route) -> actix_web::Route {
    match route.method {
        Method::Get => web::get(),
        Method::Post => web::post(),
        Method::Put => web::put(),
    }
}

type Handler = std::pin::Pin<Box<dyn std::future::Future<Output = HttpResponse>>>;

type HandlerArgs = (
    LazySession<DemoSession>,
    LazySession<SudoSession>,
    HttpRequest,
    web::Data<Context>,
    web::Bytes,
);

fn handler(route: Route) -> impl Fn(HandlerArgs) -> Handler + Clone + 'static {
    move |(session, sudo, request, context, body)| {
        Box::pin(async move {
            let param = request.match_info().get("name").map(str::to_owned);
            respond(routes::handle(route.action, session, sudo, &context, param, &body).await)
        })
    }
}

fn respond(answer: Answer) -> HttpResponse {
    match answer {
        Ok(reply) => {
            let mut response =
                HttpResponse::build(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
            match reply.body {
                Body::Json(value) => response.json(value),
                Body::Html(page) => response.content_type("text/html; charset=utf-8").body(page),
            }
        }
        Err(error) => error.error_response(),
    }
}

/// The session middleware answers its own errors (413, 503, 500) with an empty body; the
/// demo speaks JSON, so they get one.
fn json_errors<B: MessageBody + 'static>(response: ServiceResponse<B>) -> ServiceResponse {
    let empty = matches!(response.response().body().size(), BodySize::None | BodySize::Sized(0));
    let Some(body) = routes::layer_error_body(response.status().as_u16(), empty) else {
        return response.map_into_boxed_body();
    };
    let mut json = HttpResponse::build(response.status());
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            json.append_header((name.clone(), value.clone()));
        }
    }
    let json = json.json(body);
    response.into_response(json)
}
