//! The benchmarks of `session` side by side with its peers: tower-sessions,
//! actix-session and axum-extra's private cookie jar, all holding the same session
//! ([`content`]).
//!
//! - `benches/micro.rs` (criterion): encode + decode, cookie seal + open, memory and Redis
//!   store load + save;
//! - `benches/cookie.rs` and `benches/redis.rs` (criterion): `session` alone, cookie seal +
//!   open of a typical and a large session, Redis load, save and create;
//! - [`apps`] and [`load`]: axum apps that differ only in their session layer, and a
//!   loopback load generator;
//! - [`memory`]: bytes per live session in the in-memory stores;
//! - [`clustered`]: round trips and local hit ratio of the clustered store on two nodes;
//! - [`index`]: "log out everywhere" among a million sessions (the `index_report` binary);
//! - the `report` binary runs everything and writes `BENCHMARKS.md`:
//!   `cargo run -p session-benches --release --bin report`.
//!
//! The private `redis-server` and its counters come from `session-test-support`.

pub mod apps;
pub mod child;
pub mod clustered;
pub mod content;
pub mod flood;
pub mod index;
pub mod load;
pub mod memory;
pub mod ops;
pub mod sql;
pub mod stores;
