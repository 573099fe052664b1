//! The clustered store's figures: one application node, then two, each a
//! [`ClusteredStore`] over the same spawned Redis, serving many sessions as a load balancer
//! without sticky sessions would send them (each request to any node).
//!
//! The commands are those clients sent, seen with `MONITOR` (not the ones a script runs),
//! so a local hit shows as no command at all.

use std::collections::BTreeMap;

use session::{ClusteredStats, ClusteredStore, RedisStore, SessionConfig, SessionProvider};
use session_test_support::RedisServer;

use crate::{
    apps::BoxError,
    content::{self, Profile},
};

/// Sessions spread over the nodes.
pub const SESSIONS: usize = 400;
/// Requests per measured phase.
pub const REQUESTS: u64 = 4_000;
/// Share of read-only requests in the mixed phase, in percent.
pub const READ_ONLY_PERCENT: u64 = 80;

/// What one phase cost.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Requests made.
    pub requests: u64,
    /// Redis session commands they sent, by name (each one round trip: nothing is pipelined).
    pub sent: BTreeMap<String, u64>,
    /// Loads served from a local cache, over every node.
    pub hits: u64,
    /// Loads that went to Redis, over every node.
    pub misses: u64,
}

impl Phase {
    /// Round trips per request.
    #[must_use]
    pub fn round_trips(&self) -> f64 {
        self.sent.values().sum::<u64>() as f64 / self.requests as f64
    }

    /// The commands per request, as `HGETALL×0.50, EVALSHA×0.20`.
    #[must_use]
    pub fn commands(&self) -> String {
        let per = |calls: u64| calls as f64 / self.requests as f64;
        let text: Vec<String> = self
            .sent
            .iter()
            .map(|(name, calls)| format!("{name}×{:.2}", per(*calls)))
            .collect();
        if text.is_empty() {
            "none".to_owned()
        } else {
            text.join(", ")
        }
    }

    /// Loads served from a local cache, in percent.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        100.0 * self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

/// The three measured phases on some nodes, after a warm-up of one mixed phase.
#[derive(Debug, Clone)]
pub struct Phases {
    /// Loads alone.
    pub read_only: Phase,
    /// Load, increment, save.
    pub read_modify_write: Phase,
    /// Both, mixed as [`READ_ONLY_PERCENT`] says.
    pub mixed: Phase,
}

/// The phases on one node and on two.
#[derive(Debug, Clone)]
pub struct Figures {
    /// One node: every request to it.
    pub one_node: Phases,
    /// Two nodes: each request to either.
    pub two_nodes: Phases,
}

type Provider = SessionProvider<Profile, ClusteredStore>;

/// Runs the phases against `redis`, on one node and then on two.
///
/// # Errors
///
/// When Redis fails or a session is lost.
pub async fn measure(redis: &RedisServer) -> Result<Figures, BoxError> {
    Ok(Figures {
        one_node: measure_nodes(redis, 1).await?,
        two_nodes: measure_nodes(redis, 2).await?,
    })
}

/// The phases on `count` fresh nodes, with sessions of their own.
async fn measure_nodes(redis: &RedisServer, count: usize) -> Result<Phases, BoxError> {
    let prefix = format!("bench-clustered-{count}:");
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let store = RedisStore::builder(redis.url()).prefix(&prefix);
        let store = ClusteredStore::builder(store).build().await?;
        nodes.push(SessionProvider::<Profile, _>::new(
            store,
            SessionConfig::development().build()?,
        ));
    }
    let mut tokens = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut session = nodes[0].create()?;
        content::fill(&mut session);
        nodes[0].save(&mut session).await?;
        tokens.push(session.id().expose());
    }
    let mut requests = Requests::new(&nodes, &tokens);
    requests.phase(redis, READ_ONLY_PERCENT).await?;
    Ok(Phases {
        read_only: requests.phase(redis, 100).await?,
        read_modify_write: requests.phase(redis, 0).await?,
        mixed: requests.phase(redis, READ_ONLY_PERCENT).await?,
    })
}

/// A deterministic stream of requests: a session, a node and a kind for each.
struct Requests<'a> {
    nodes: &'a [Provider],
    tokens: &'a [String],
    state: u64,
}

impl<'a> Requests<'a> {
    fn new(nodes: &'a [Provider], tokens: &'a [String]) -> Self {
        Self {
            nodes,
            tokens,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// xorshift64: the same sequence on every run.
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// `REQUESTS` requests, `read_only_percent` of them read-only, the rest a visit
    /// counter's read-modify-write.
    async fn phase(&mut self, redis: &RedisServer, read_only_percent: u64) -> Result<Phase, BoxError> {
        let stats =
            |nodes: &[Provider]| -> Vec<ClusteredStats> { nodes.iter().map(|node| node.store().stats()).collect() };
        let before_stats = stats(self.nodes);
        let monitor = redis.monitor()?;
        for _ in 0..REQUESTS {
            let pick = self.next();
            let token = &self.tokens[(pick % self.tokens.len() as u64) as usize];
            let node = &self.nodes[((pick >> 20) % self.nodes.len() as u64) as usize];
            let mut session = node.load(token).await?.ok_or("a session was lost")?;
            if (pick >> 32) % 100 >= read_only_percent {
                *session.visits_mut() += 1;
                node.save(&mut session).await?;
            }
        }
        let sent = monitor.client_commands(redis)?;
        let after_stats = stats(self.nodes);
        let delta = |field: fn(&ClusteredStats) -> u64| -> u64 {
            after_stats
                .iter()
                .zip(&before_stats)
                .map(|(after, before)| field(after) - field(before))
                .sum()
        };
        Ok(Phase {
            requests: REQUESTS,
            sent,
            hits: delta(|stats| stats.hits),
            misses: delta(|stats| stats.misses),
        })
    }
}
