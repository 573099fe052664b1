//! The two deployments the Redis store talks to: one server (or a primary with replicas)
//! and Redis Cluster, behind one connection type so every single-key command is written
//! once.

use std::time::Duration;

use redis::{
    Client, Cmd, IntoConnectionInfo as _, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};

use crate::Error;

/// A Redis node by address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What the store connects to, and how to open a fresh connection to it.
pub(super) enum Backend {
    Standalone {
        client: Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        config: redis::cluster::ClusterConfig,
        /// The first node's settings: credentials, TLS.
        seed: Box<redis::ConnectionInfo>,
    },
}

impl Backend {
    /// `tls_roots`: PEM certificates to trust for `rediss://` instead of the system's.
    pub(super) fn standalone(url: &str, timeout: Duration, tls_roots: Option<&[u8]>) -> Result<Self, Error> {
        let client = match tls_roots {
            #[cfg(feature = "redis-tls")]
            Some(pem) => Client::build_with_tls(url, certificates(pem)),
            _ => Client::open(url),
        }
        .map_err(|error| invalid_url(url, &error))?;
        // The store bounds every call with its own timeout (`call.rs`); the connection's own
        // response timer (500 ms unless set) would be a second timer per command, and cut a
        // longer configured timeout short.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(timeout);
        Ok(Self::Standalone { client, config })
    }

    pub(super) fn cluster(urls: &[String], timeout: Duration, tls_roots: Option<&[u8]>) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(no_cluster_urls());
        }
        // Parsed one by one so the error names the bad URL.
        let parsed = urls.iter().map(|url| parse_url(url)).collect::<Result<Vec<_>, _>>()?;
        let seed = Box::new(parsed.into_iter().next().expect("checked non-empty above"));
        let builder = ClusterClient::builder(urls.iter().map(String::as_str));
        let builder = match tls_roots {
            #[cfg(feature = "redis-tls")]
            Some(pem) => builder.certs(certificates(pem)),
            _ => builder,
        };
        let client = builder
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // The store's own timeout and retry bound each call; these only cover
            // redirections and topology changes inside one call.
            .retries(4)
            .min_retry_wait(10)
            .max_retry_wait(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            .build()
            .map_err(|error| Error::Config(format!("invalid Redis Cluster settings: {error}")))?;
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(Self::Cluster { client, config, seed })
    }

    /// A fresh connection, connected at its first command.
    pub(super) fn connect_lazily(&self) -> Result<Connection, Error> {
        match self {
            Self::Standalone { client, config } => {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(Connection::Standalone)
                    .map_err(|error| Error::Config(format!("invalid Redis connection settings: {error}")))
            }
            Self::Cluster { client, config, .. } => Ok(Connection::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// The settings of the server, or of the first cluster node given.
    pub(super) fn seed(&self) -> &redis::ConnectionInfo {
        match self {
            Self::Standalone { client, .. } => client.get_connection_info(),
            Self::Cluster { seed, .. } => seed,
        }
    }
}

pub(super) fn no_cluster_urls() -> Error {
    Error::Config("a Redis Cluster store needs at least one node URL (redis://host:port)".into())
}

/// The settings `url` gives, or an error naming it.
pub(super) fn parse_url(url: &str) -> Result<redis::ConnectionInfo, Error> {
    url.into_connection_info().map_err(|error| invalid_url(url, &error))
}

fn invalid_url(url: &str, error: &redis::RedisError) -> Error {
    let hint = if url.starts_with("rediss:") && !cfg!(feature = "redis-tls") {
        "; enable the `redis-tls` feature of `session` for rediss:// URLs"
    } else {
        "; expected redis://[[user]:password@]host[:port][/db] or rediss://…"
    };
    Error::Config(format!("invalid Redis URL: {error}{hint}"))
}

#[cfg(feature = "redis-tls")]
fn certificates(pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

/// A multiplexed connection to one server, or to a whole cluster (routing each command by
/// its key's slot).
#[derive(Clone)]
pub(super) enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Connection {
    /// Runs `cmd` on `node` (a cluster node), or on the one server.
    pub(super) async fn on_node<T: redis::FromRedisValue>(&mut self, cmd: &Cmd, node: Option<&Node>) -> RedisResult<T> {
        match (self, node) {
            (Self::Cluster(connection), Some(node)) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: node.host.clone(),
                    port: node.port,
                });
                let value = connection.route_command(cmd.clone(), routing).await?;
                redis::from_redis_value(value).map_err(Into::into)
            }
            (connection, _) => cmd.query_async(connection).await,
        }
    }

    /// The primaries that hold slots, sorted by address (`[None]` for one server), and
    /// whether they serve every slot: mid-failover they may not, and a partial list would
    /// make a scan, or the clustered store's listeners, miss sessions.
    pub(super) async fn primaries(&mut self) -> RedisResult<(Vec<Option<Node>>, bool)> {
        let Self::Cluster(connection) = self else {
            return Ok((vec![None], true));
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let text: String = redis::from_redis_value(
            connection
                .route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing)
                .await?,
        )?;
        let (mut nodes, slots) = parse_primaries(&text);
        nodes.sort();
        nodes.dedup();
        Ok((nodes.into_iter().map(Some).collect(), slots == SLOTS))
    }
}

/// The slots of a Redis Cluster.
const SLOTS: u32 = 16_384;

/// The primaries with slots in `CLUSTER NODES` output, except those known to have failed,
/// and how many slots they serve together.
///
/// A line is `<id> <ip:port@bus[,hostname]> <flags> <primary id> <ping> <pong> <epoch>
/// <link> <slot ranges...>`; a range is `a-b` or `a`, and `[…]` marks a slot migrating.
fn parse_primaries(text: &str) -> (Vec<Node>, u32) {
    let mut slots = 0;
    let nodes = text
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (*parts.get(1)?, *parts.get(2)?);
            let flags: Vec<&str> = flags.split(',').collect();
            let serving = flags.contains(&"master") && !flags.contains(&"fail") && !flags.contains(&"noaddr");
            if !serving || parts.len() < 9 {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            let node = Node {
                host: host.to_owned(),
                port: port.parse().ok()?,
            };
            for range in parts[8..].iter().filter(|range| !range.starts_with('[')) {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(low), Ok(high)) = (low.parse::<u32>(), high.parse::<u32>()) {
                    slots += high.saturating_sub(low) + 1;
                }
            }
            Some(node)
        })
        .collect();
    (nodes, slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_output_yields_the_serving_primaries() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,node-3 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 master,fail - 1426238316232 1426238315737 5 disconnected 0-5460
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
9a1b 127.0.0.1:30006@40006 master - 0 1426238316232 6 connected
";
        let (nodes, slots) = parse_primaries(text);
        let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        assert_eq!(nodes, ["127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30001"]);
        assert_eq!(slots, 16_384);
        let (_, slots) = parse_primaries(&text.replace("myself,master", "myself,master,fail"));
        assert_eq!(slots, 16_384 - 5461, "a failed primary's slots are not served");
    }
}
