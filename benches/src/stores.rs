//! The Redis-backed stores, set up as each library's documentation shows.

use tower_sessions_redis_store::{
    RedisStore as TowerRedisStore,
    fred::prelude::{ClientLike, Config, Pool},
};

use crate::apps::BoxError;

/// Connections in the tower-sessions fred pool: the size its documentation uses.
pub const TOWER_POOL_SIZE: usize = 6;

/// Key prefix of this crate's Redis store in the benchmarks.
pub const OURS_PREFIX: &str = "bench:";

/// This crate's Redis store.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn ours_redis(url: &str) -> Result<session::RedisStore, BoxError> {
    Ok(session::RedisStore::builder(url).prefix(OURS_PREFIX).build().await?)
}

/// tower-sessions-redis-store over a connected fred pool.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn tower_redis(url: &str) -> Result<TowerRedisStore<Pool>, BoxError> {
    let pool = Pool::new(Config::from_url(url)?, None, None, None, TOWER_POOL_SIZE)?;
    pool.init().await?;
    Ok(TowerRedisStore::new(pool))
}

/// actix-session's `RedisSessionStore`.
///
/// # Errors
///
/// When Redis cannot be reached.
pub async fn actix_redis(url: &str) -> Result<actix_session::storage::RedisSessionStore, BoxError> {
    Ok(actix_session::storage::RedisSessionStore::new(url).await?)
}
