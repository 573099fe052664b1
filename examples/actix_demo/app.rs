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
    LazySession, OutagePolicy, SessionBackend,
    actix::{RequireSession, SessionMiddleware},
};

use super::routes::{self, Answer, Body, Context, DemoSession, Method, ROUTES, Route};

/// The session middleware over `backend`; clone it into every worker's [`app`].
pub fn middleware<B: SessionBackend<DemoSession>>(
    backend: B,
    outage: OutagePolicy,
) -> SessionMiddleware<DemoSession, B> {
    SessionMiddleware::new(backend).on_store_outage(outage)
}

/// The demo application behind `middleware`; `context.store` names the store on the page.
pub fn app<B: SessionBackend<DemoSession>>(
    middleware: SessionMiddleware<DemoSession, B>,
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
        for route in routes.clone() {
            resource = resource.route(method(route).to(handler(*route)));
        }
        app = if routes.clone().any(|route| route.logged_in_only) {
            app.service(resource.wrap(RequireSession::new(routes::logged_in)))
        } else {
            app.service(resource)
        };
    }
    app.wrap(middleware).wrap_fn(|request, service| {
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

fn handler(
    route: Route,
) -> impl Fn(LazySession<DemoSession>, HttpRequest, web::Data<Context>, web::Bytes) -> Handler + Clone + 'static {
    move |session, request, context, body| {
        Box::pin(async move {
            let param = request.match_info().get("name").map(str::to_owned);
            respond(routes::handle(route.action, session, &context, param, &body).await)
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
