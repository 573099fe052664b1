//! Private Redis processes for the tests and benchmarks of `session`: a `redis-server`
//! ([`RedisServer`]) and a 6-node Redis Cluster ([`RedisCluster`]), each on free loopback
//! ports, never the default port 6379 (a system Redis may run there), killed on drop.
//!
//! Both need `redis-server` (and the cluster `redis-cli`) on the `PATH`: they panic with
//! how to install it when it is missing. [`RedisServer::shared`] and
//! [`RedisCluster::shared`] are started once per process for the tests that only need
//! somewhere to write under a prefix of their own; since a `static` is never dropped, a
//! watchdog process kills them when the process that started them exits.
//!
//! [`PostgresServer`] is a PostgreSQL server of a test's own (`initdb` + `postgres`), for
//! the SQL stores' outage tests: frozen, stopped and started again without touching the
//! machine's shared server.

pub mod postgres_server;
pub mod redis_cluster;
pub mod redis_server;
mod watchdog;

pub use postgres_server::PostgresServer;
pub use redis_cluster::RedisCluster;
pub use redis_server::{Counters, Monitor, RedisServer, Traffic};
