//! Bytes per live session in the in-memory stores, from the resident set size of a fresh
//! process before and after filling its store.

use std::{sync::Arc, time::Duration};

use session::{MemoryStore, SessionConfig, SessionProvider};
use tower_sessions::{
    SessionStore as _,
    cookie::time::OffsetDateTime,
    session::{Id, Record},
};

use crate::{
    apps::BoxError,
    content::{self, Profile},
};

/// Which store to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// This crate's `MemoryStore`, through `SessionProvider`.
    Ours,
    /// tower-sessions' `MemoryStore`, through its `SessionStore` trait.
    Tower,
}

/// What a fill measured.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    /// Live sessions the store holds afterwards.
    pub sessions: u64,
    /// Growth of the resident set, bytes.
    pub bytes: u64,
}

impl Footprint {
    /// Bytes per live session.
    pub fn per_session(&self) -> f64 {
        self.bytes as f64 / self.sessions.max(1) as f64
    }
}

/// The resident set size of this process, from `/proc/self/status`.
///
/// # Errors
///
/// Where `/proc` is not available.
pub fn rss_bytes() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

/// Fills a new store of `which` kind with `count` copies of the benchmark session and
/// measures how much the process grew. Run it in a fresh process.
///
/// # Errors
///
/// When a save fails.
pub async fn fill(which: Filled, count: u64) -> Result<Footprint, BoxError> {
    match which {
        Filled::Ours => {
            // Room for every session: the default capacity (1,000,000) would evict
            // some from the fuller shards.
            let store = MemoryStore::builder()
                .capacity(2 * count as usize)
                .sweep_interval(Duration::ZERO)
                .build();
            let provider = SessionProvider::<Profile, _>::new(store, SessionConfig::development().build()?);
            let before = rss_bytes()?;
            for _ in 0..count {
                let mut session = provider.create()?;
                content::fill(&mut session);
                provider.save(&mut session).await?;
            }
            let bytes = rss_bytes()?.saturating_sub(before);
            Ok(Footprint {
                sessions: provider.store().len() as u64,
                bytes,
            })
        }
        Filled::Tower => {
            let store = Arc::new(tower_sessions::MemoryStore::default());
            let data = content::tower_data();
            let expiry = OffsetDateTime::now_utc() + tower_sessions::cookie::time::Duration::weeks(2);
            let before = rss_bytes()?;
            for _ in 0..count {
                // `create` replaces the ID with a fresh one, as `Session::save` relies on.
                let mut record = Record {
                    id: Id::default(),
                    data: data.clone(),
                    expiry_date: expiry,
                };
                store.create(&mut record).await?;
            }
            let bytes = rss_bytes()?.saturating_sub(before);
            Ok(Footprint { sessions: count, bytes })
        }
    }
}
