//! A flood of new anonymous sessions against a full memory store with logged-in users in
//! it: how many of those users survive, the memory before and after, and the time per
//! insert. The report runs it in a fresh process (`report flood`), so the resident set it
//! reads is the flood's alone.

use std::time::{Duration, Instant};

use session::{MemoryStore, SessionConfig, SessionData, SessionProvider};

use crate::{apps::BoxError, memory::rss_bytes};

const CAPACITY: usize = 100_000;
const USERS: usize = 1_000;
const FLOOD: usize = 200_000;

#[derive(SessionData)]
struct Visitor {
    user: Option<String>,
    visits: u64,
}

/// Runs the flood and returns its figures as the rows of a Markdown table.
pub async fn flood() -> Result<Vec<String>, BoxError> {
    let store = MemoryStore::builder()
        .capacity(CAPACITY)
        .sweep_interval(Duration::ZERO)
        .build();
    let provider = SessionProvider::<Visitor, _>::new(store.clone(), SessionConfig::production().build()?);

    // Logged-in users: created on a first visit, then a login that regenerates the ID.
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let mut session = provider.create()?;
        *session.visits_mut() += 1;
        provider.save(&mut session).await?;
        session.regenerate_id()?;
        session.set_user(Some(format!("user{i}")));
        provider.save(&mut session).await?;
        users.push(session.id().clone());
    }
    // Fill the store to capacity with one-request visitors, then measure the flood.
    let mut filler = 0;
    while store.len() < CAPACITY && filler < 2 * CAPACITY {
        visit(&provider).await?;
        filler += 1;
    }
    let (rss_before, bytes_before, len_before) = (rss_bytes()?, store.bytes(), store.len());
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..FLOOD {
        if visit(&provider).await.is_err() {
            refused += 1;
        }
    }
    let per_insert = started.elapsed() / FLOOD as u32;
    let (rss_after, bytes_after, len_after) = (rss_bytes()?, store.bytes(), store.len());
    let mut survivors = 0;
    for id in &users {
        if provider.try_get(id).await?.is_some_and(|s| s.user().is_some()) {
            survivors += 1;
        }
    }

    Ok(vec![
        format!("| store capacity (sessions) | {CAPACITY} |"),
        format!("| logged-in users before the flood | {USERS} |"),
        format!("| new anonymous sessions in the flood | {FLOOD} ({refused} refused) |"),
        format!("| logged-in users that survived | {survivors} of {USERS} |"),
        format!("| sessions held, before / after | {len_before} / {len_after} |"),
        format!(
            "| store bytes (accounted), before / after | {:.1} / {:.1} MiB |",
            mib(bytes_before),
            mib(bytes_after)
        ),
        format!(
            "| process RSS, before / after | {:.1} / {:.1} MiB |",
            mib(rss_before as usize),
            mib(rss_after as usize)
        ),
        format!(
            "| time per insert (create + save, eviction included) | {:.2} µs |",
            per_insert.as_secs_f64() * 1e6
        ),
    ])
}

/// One visitor's only request: a new session with something in it.
async fn visit(provider: &SessionProvider<Visitor, MemoryStore>) -> Result<(), session::Error> {
    let mut session = provider.create()?;
    *session.visits_mut() += 1;
    provider.save(&mut session).await.map(drop)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
