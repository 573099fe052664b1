//! The load generator: keep-alive HTTP/1.1 connections on loopback, each with its own
//! cookie jars, bounded in requests and in time.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::{body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Barrier, task::JoinSet};

use crate::apps::BoxError;

/// How long one request may take before the connection gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Users a connection takes turns with, each with its own cookie jar (and so session).
    pub users_per_connection: usize,
    /// How long the measured phase lasts.
    pub duration: Duration,
    /// The most requests one connection sends in the measured phase.
    pub max_requests_per_connection: u64,
}

/// The outcome of a measured phase.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Successful requests.
    pub requests: u64,
    /// Failed requests (non-2xx or transport errors).
    pub errors: u64,
    /// One of the failures (its status or transport error), if any: enough to tell an
    /// answered error from a broken connection.
    pub a_failure: Option<String>,
    /// How long the phase lasted.
    pub elapsed: Duration,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
}

impl Outcome {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// One user's cookies, and the `Cookie` header they make, rendered only when they change:
/// the load generator shares the machine with the server, so it does as little per request
/// as a client can.
#[derive(Default)]
struct User {
    jar: Vec<(String, String)>,
    header: Option<HeaderValue>,
}

impl User {
    fn remember(&mut self, headers: &http::HeaderMap) {
        let mut changed = false;
        for value in headers.get_all(header::SET_COOKIE) {
            let Some((name, value, expired)) = value.to_str().ok().and_then(set_cookie) else {
                continue;
            };
            let held = self.jar.iter().position(|(held, _)| held == name);
            match (held, expired || value.is_empty()) {
                (Some(index), true) => drop(self.jar.swap_remove(index)),
                (Some(index), false) => value.clone_into(&mut self.jar[index].1),
                (None, true) => continue,
                (None, false) => self.jar.push((name.to_owned(), value.to_owned())),
            }
            changed = true;
        }
        if changed {
            let text = self
                .jar
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            self.header =
                (!text.is_empty()).then(|| HeaderValue::try_from(text).expect("cookie text is a header value"));
        }
    }
}

/// A `Set-Cookie` value's name, value, and whether it removes the cookie (`Max-Age` zero
/// or negative: how every library here expires one).
fn set_cookie(text: &str) -> Option<(&str, &str, bool)> {
    let mut parts = text.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let expired = parts.any(|attribute| {
        attribute.trim().split_once('=').is_some_and(|(key, age)| {
            key.eq_ignore_ascii_case("max-age") && age.trim().parse::<i64>().is_ok_and(|age| age <= 0)
        })
    });
    Some((name.trim(), value.trim().trim_matches('"'), expired))
}

struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    users: Vec<User>,
}

impl Connection {
    async fn open(addr: SocketAddr, users: usize) -> Result<Self, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let users = (0..users).map(|_| User::default()).collect();
        Ok(Self { sender, users })
    }

    /// One request as `user`; `Ok(Err(status))` for a non-2xx answer.
    async fn request(&mut self, user: usize, path: &str) -> Result<Result<(), StatusCode>, BoxError> {
        let user = &mut self.users[user];
        let mut request = Request::get(path).header(header::HOST, "127.0.0.1");
        if let Some(cookies) = &user.header {
            request = request.header(header::COOKIE, cookies.clone());
        }
        let request = request.body(Empty::new())?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            body.collect().await?;
            Ok::<_, BoxError>(parts)
        };
        let parts = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await??;
        user.remember(&parts.headers);
        Ok(if parts.status.is_success() {
            Ok(())
        } else {
            Err(parts.status)
        })
    }
}

/// Connected clients whose users each hold a session.
pub struct Clients {
    connections: Vec<Connection>,
    load: Load,
}

impl Clients {
    /// Opens the connections and has every user call `init_path` once, so every user
    /// holds a session before anything is measured.
    ///
    /// # Errors
    ///
    /// When a connection fails or an init request is refused.
    pub async fn connect(addr: SocketAddr, load: Load, init_path: &str) -> Result<Self, BoxError> {
        let mut connections = Vec::with_capacity(load.connections);
        for _ in 0..load.connections {
            let mut connection = Connection::open(addr, load.users_per_connection).await?;
            for user in 0..load.users_per_connection {
                if let Err(status) = connection.request(user, init_path).await? {
                    return Err(format!("{init_path} failed: {status}").into());
                }
            }
            connections.push(connection);
        }
        Ok(Self { connections, load })
    }

    /// Sends `path` from every connection, users in turn, until the duration is over or
    /// each connection has sent its most requests.
    ///
    /// # Errors
    ///
    /// When a connection task panics.
    pub async fn run(&mut self, path: &'static str) -> Result<Outcome, BoxError> {
        let load = self.load;
        let start = Arc::new(Barrier::new(load.connections + 1));
        let mut tasks = JoinSet::new();
        for mut connection in self.connections.drain(..) {
            let start = start.clone();
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(64 * 1024);
                let (mut errors, mut a_failure) = (0, None);
                start.wait().await;
                let deadline = Instant::now() + load.duration;
                let mut sent = 0u64;
                while sent < load.max_requests_per_connection && Instant::now() < deadline {
                    let user = (sent % load.users_per_connection as u64) as usize;
                    let began = Instant::now();
                    match connection.request(user, path).await {
                        Ok(Ok(())) => latencies.push(began.elapsed().as_micros() as u32),
                        Ok(Err(status)) => {
                            errors += 1;
                            a_failure.get_or_insert_with(|| status.to_string());
                        }
                        Err(error) => {
                            errors += 1;
                            a_failure.get_or_insert_with(|| error.to_string());
                            break;
                        }
                    }
                    sent += 1;
                }
                (connection, latencies, errors, a_failure)
            });
        }
        start.wait().await;
        let began = Instant::now();
        let mut latencies = Vec::new();
        let (mut errors, mut a_failure) = (0, None);
        while let Some(joined) = tasks.join_next().await {
            let (connection, mut some, failed, failure) = joined?;
            self.connections.push(connection);
            latencies.append(&mut some);
            errors += failed;
            a_failure = a_failure.or(failure);
        }
        let elapsed = began.elapsed();
        latencies.sort_unstable();
        Ok(Outcome {
            requests: latencies.len() as u64,
            errors,
            a_failure,
            elapsed,
            p50_us: percentile(&latencies, 0.50),
            p99_us: percentile(&latencies, 0.99),
        })
    }
}

/// The `q` quantile of sorted samples (nearest rank).
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn jars_keep_replace_and_expire_cookies() {
        let mut user = User::default();
        let set = |user: &mut User, values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for value in values {
                headers.append(header::SET_COOKIE, value.parse().unwrap());
            }
            user.remember(&headers);
            user.header.as_ref().map(|value| value.to_str().unwrap().to_owned())
        };
        assert_eq!(set(&mut user, &["id=abc; Path=/; HttpOnly"]).as_deref(), Some("id=abc"));
        assert_eq!(set(&mut user, &[]).as_deref(), Some("id=abc"));
        assert_eq!(
            set(&mut user, &["id=xyz; Max-Age=600", "other=1"]).as_deref(),
            Some("id=xyz; other=1")
        );
        assert_eq!(set(&mut user, &["id=; Path=/; max-age=0"]).as_deref(), Some("other=1"));
        assert_eq!(set(&mut user, &["other=1; Max-Age=-1"]), None);
        assert_eq!(set(&mut user, &["not a cookie"]), None);
    }
}
