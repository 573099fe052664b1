//! The invalidation connections and the task that keeps them up.
//!
//! One RESP3 connection per primary, in `CLIENT TRACKING ON BCAST PREFIX <prefix>` mode
//! (invariants 1, 2 and 5 on `ClusteredStore`). The connection is opened on a TCP
//! stream of our own (under TLS for `rediss://`), with a second handle on its socket and a
//! count of the bytes read ([`Link`]), so the read path can tell, without a round trip,
//! whether Redis has written anything not yet applied, and wait for just that.

use std::{
    future::{Future, poll_fn},
    io,
    pin::{Pin, pin},
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    task::{Context, Poll},
    time::Duration,
};

use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value, aio::MultiplexedConnection};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use super::{Shared, tracker::Link};
use crate::{
    Error,
    id::KeyMap,
    store::redis::{RedisStore, tracking::Node},
};

/// The longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One live invalidation connection.
pub(super) struct Listener {
    connection: MultiplexedConnection,
    link: Arc<Link>,
    node: Node,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.link.close();
    }
}

/// Applies what Redis pushes; runs inside the connection's driver, so an invalidation is
/// applied before the driver's poll ends (see [`Link`]).
struct Invalidations {
    shared: Weak<Shared>,
}

impl redis::aio::AsyncPushSender for Invalidations {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        let Some(shared) = self.shared.upgrade() else {
            return Err(redis::aio::SendError);
        };
        if info.kind != PushKind::Invalidate {
            return Ok(());
        }
        #[cfg(test)]
        if shared.deaf.load(std::sync::atomic::Ordering::SeqCst) {
            shared.dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Ok(());
        }
        match info.data.first() {
            Some(Value::Array(names)) => {
                let names = names.iter().filter_map(|name| match name {
                    Value::BulkString(name) => Some(name.as_slice()),
                    _ => None,
                });
                for (key, writers) in writers(&shared.store, names) {
                    let echo = shared.tracker.note_mention(&key);
                    if echo && writers.only_own() {
                        continue;
                    }
                    // Counted first: whoever sees the entry invalidated sees it counted.
                    shared
                        .tracker
                        .counters
                        .invalidations
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    shared.tracker.invalidate(&key);
                }
            }
            // A null invalidation: the database was flushed.
            _ => shared.tracker.flush(),
        }
        Ok(())
    }
}

/// The writers one invalidation message names for one session key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Writers {
    /// This store signed a write of the key.
    own: bool,
    /// Another store signed a write of the key.
    other: bool,
}

impl Writers {
    /// Every write of the key in this event-loop cycle was this store's. (An unsigned
    /// change, such as an expiry, names no writer: the key alone counts as another's.)
    fn only_own(self) -> bool {
        self.own && !self.other
    }
}

/// Groups the key names of one message by session key; names that are not this store's
/// are ignored, whatever sent them.
fn writers<'a>(redis: &RedisStore, names: impl Iterator<Item = &'a [u8]>) -> KeyMap<Writers> {
    let mut grouped = KeyMap::<Writers>::default();
    for name in names {
        let Some((key, writer)) = redis.parse_mention(name) else {
            continue;
        };
        let writers = grouped.entry(key).or_default();
        match writer {
            None => {}
            Some(writer) if writer == redis.writer().as_bytes() => writers.own = true,
            Some(_) => writers.other = true,
        }
    }
    grouped
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable(Box::new(error))
}

async fn within<T, E>(timeout: Duration, future: impl Future<Output = Result<T, E>>) -> Result<T, Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| Error::Timeout(timeout))?
        .map_err(store_error)
}

/// Opens the invalidation connection to `node` and turns tracking on.
async fn connect(shared: &Arc<Shared>, node: &Node) -> Result<Listener, Error> {
    let timeout = shared.store.command_timeout();
    let stream = within(timeout, TcpStream::connect((node.host.as_str(), node.port))).await?;
    stream.set_nodelay(true).map_err(store_error)?;
    let stream = stream.into_std().map_err(store_error)?;
    let peek = stream.try_clone().map_err(store_error)?;
    let stream = TcpStream::from_std(stream).map_err(store_error)?;
    let link = Arc::new(Link::new(peek));
    let stream = Counted {
        stream,
        received: link.received(),
    };
    // The peek handle keeps the socket open: until a listener owns the link, close it here.
    let connection = match open(shared, node, stream, &link).await {
        Ok(connection) => connection,
        Err(error) => {
            link.close();
            return Err(error);
        }
    };
    // From here, dropping the listener closes the link, which ends the driver.
    let mut listener = Listener {
        connection,
        link,
        node: node.clone(),
    };
    let name = shared.name.as_str();
    let prefix = shared.store.prefix();
    let connection = &mut listener.connection;
    within(timeout, async {
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(name)
            .query_async::<()>(connection)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(prefix)
            .query_async::<()>(connection)
            .await
    })
    .await?;
    if shared.store.is_cluster() {
        // The topology came from one node's view, which may lag a failover.
        let role: Vec<Value> = within(timeout, redis::cmd("ROLE").query_async(connection)).await?;
        if !matches!(role.first(), Some(Value::BulkString(role)) if role == b"master") {
            return Err(Error::Unavailable(format!("{node} is no longer a primary").into()));
        }
    }
    Ok(listener)
}

/// The invalidation connection's socket, adding every byte read to [`Link`]'s count (TCP
/// bytes, under TLS too, as the link's peek handle sees them).
struct Counted {
    stream: TcpStream,
    received: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.received.fetch_add(read as u64, SeqCst);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Opens the RESP3 connection on `stream`, inside TLS for `rediss://`, and starts its
/// driver.
#[cfg_attr(not(feature = "redis-tls"), allow(unused_variables))]
async fn open(
    shared: &Arc<Shared>,
    node: &Node,
    stream: Counted,
    link: &Arc<Link>,
) -> Result<MultiplexedConnection, Error> {
    #[cfg(feature = "redis-tls")]
    if let Some(config) = &shared.nodes.tls {
        // `link` still peeks at the TCP socket under TLS, and unread bytes there still mean
        // "not yet applied": the driver's poll ends only once rustls holds no plaintext and
        // the socket would block, so what rustls keeps is at most a partial record, the
        // same case as a partial RESP frame over plain TCP.
        let name = rustls::pki_types::ServerName::try_from(node.host.clone())
            .map_err(|error| Error::Config(format!("{node}: not a TLS server name: {error}")))?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let stream = within(shared.store.command_timeout(), connector.connect(name, stream)).await?;
        return start(shared, stream, link).await;
    }
    start(shared, stream, link).await
}

/// Speaks RESP3 on `stream` and spawns the driver that applies what Redis pushes.
async fn start<S>(shared: &Arc<Shared>, stream: S, link: &Arc<Link>) -> Result<MultiplexedConnection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.store.command_timeout();
    let settings = shared.nodes.redis.clone().set_protocol(ProtocolVersion::RESP3);
    let config = AsyncConnectionConfig::new()
        .set_push_sender(Invalidations {
            shared: Arc::downgrade(shared),
        })
        .set_response_timeout(Some(timeout));
    let (connection, driver) = within(
        timeout,
        MultiplexedConnection::new_with_config(&settings, stream, config),
    )
    .await?;
    tokio::spawn(drive(driver, link.clone(), Arc::downgrade(shared)));
    Ok(connection)
}

/// Polls the connection's driver, bracketing each poll for [`Link`]; reports its end.
async fn drive(driver: impl Future<Output = ()>, link: Arc<Link>, shared: Weak<Shared>) {
    let mut driver = pin!(driver);
    poll_fn(|cx| link.polling(|| driver.as_mut().poll(cx))).await;
    link.close();
    if let Some(shared) = shared.upgrade()
        && shared.tracker.link_ended(&link)
    {
        tracing::warn!(
            "clustered session store: an invalidation connection closed; serving from Redis until it is back"
        );
        shared.lost.notify_one();
    }
}

/// Connects to every primary; all or nothing.
pub(super) async fn connect_all(shared: &Arc<Shared>) -> Result<Vec<Listener>, Error> {
    let nodes = shared.store.primaries().await?;
    if nodes.is_empty() {
        return Err(Error::Unavailable("Redis reported no primary to listen to".into()));
    }
    let mut listeners = Vec::with_capacity(nodes.len());
    for node in &nodes {
        listeners.push(connect(shared, node).await?);
    }
    shared
        .tracker
        .install(listeners.iter().map(|listener| listener.link.clone()).collect());
    Ok(listeners)
}

/// Whether every listener answers `PING` and, on a cluster, still covers every primary.
async fn healthy(shared: &Shared, listeners: &mut [Listener]) -> bool {
    let timeout = shared.store.command_timeout();
    for listener in listeners.iter_mut() {
        let ping = redis::cmd("PING");
        if let Err(error) = within(timeout, ping.query_async::<()>(&mut listener.connection)).await {
            tracing::warn!(node = %listener.node, %error, "clustered session store: an invalidation connection stopped answering");
            return false;
        }
    }
    if shared.store.is_cluster() {
        // A failed topology query (e.g. mid-failover) is no reason to drop working links.
        if let Ok(primaries) = shared.store.primaries().await {
            let listening: Vec<&Node> = listeners.iter().map(|listener| &listener.node).collect();
            if primaries.iter().collect::<Vec<_>>() != listening {
                tracing::info!("clustered session store: the cluster's primaries changed; reconnecting");
                return false;
            }
        }
    }
    true
}

/// Keeps the listeners up for as long as the store lives: checks them every `interval`,
/// and on any loss flushes the cache (via the tracker) and reconnects with backoff.
pub(super) async fn supervise(shared: Weak<Shared>, mut listeners: Vec<Listener>, interval: Duration) {
    loop {
        // Watching.
        loop {
            {
                let Some(shared) = shared.upgrade() else { return };
                tokio::select! {
                    () = shared.lost.notified() => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
            let Some(strong) = shared.upgrade() else { return };
            // A link that ended has already made the tracker not ready; a notification
            // left over from an earlier loss finds it ready and changes nothing.
            if !strong.tracker.is_ready() || !healthy(&strong, &mut listeners).await {
                strong.tracker.lost();
                break;
            }
            strong.tracker.prune();
        }
        listeners.clear();
        // Reconnecting.
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::time::sleep(backoff).await;
            let Some(strong) = shared.upgrade() else { return };
            match connect_all(&strong).await {
                Ok(fresh) => {
                    tracing::info!("clustered session store: invalidation connections restored; caching again");
                    listeners = fresh;
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "clustered session store: reconnecting the invalidation connections failed");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(all(test, feature = "redis-tls"))]
mod tests {
    use std::{io::Read as _, time::Instant};

    use session_test_support::RedisServer;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_handshake_nobody_answers_ends_within_the_timeout_and_closes_the_socket() {
        let server = RedisServer::start();
        let redis = RedisStore::builder(server.url()).command_timeout(Duration::from_millis(300));
        let mut nodes = redis.node_settings().unwrap();
        let redis = redis.signing_writes().build().await.unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        nodes.tls = Some(Arc::new(config));
        let shared = Arc::new(Shared::new(redis, nodes, 100, Duration::from_secs(5)).unwrap());
        // Accepts connections (in its backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let node = Node {
            host: "127.0.0.1".into(),
            port: silent.local_addr().unwrap().port(),
        };

        let started = Instant::now();
        let error = connect(&shared, &node)
            .await
            .err()
            .expect("connected to a silent server");
        assert!(matches!(error, Error::Timeout(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

        let (mut accepted, _) = silent.accept().unwrap();
        accepted.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sent = Vec::new();
        accepted
            .read_to_end(&mut sent)
            .expect("the socket was closed, its peek handle included");
        assert_eq!(sent.first(), Some(&0x16), "a TLS handshake record was sent");
    }
}
