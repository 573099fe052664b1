//! The Redis store against a real `redis-server` of the test's own: the shared contract,
//! round trips counted by Redis itself, the layout at rest, outages and restarts.

mod common;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use common::{AppSession, redis_server::RedisServer};
use session::{
    __private::FieldDef,
    Clock, Error, ManualClock, RedisStore, RedisStoreBuilder, SaveOutcome, SessionConfig, SessionData, SessionId,
    SessionMeta, SessionProvider,
    crypto::{KeyId, KeyRing, OpenLimits, Purpose, Secret},
    resilience::{BreakerConfig, BreakerState, RetryPolicy},
    store::{FieldRecord, QueryStore, Record, SessionStore},
};

type Provider = SessionProvider<AppSession, RedisStore>;

const IDLE: Duration = Duration::from_secs(30 * 60);

fn builder(server: &RedisServer, clock: &ManualClock) -> RedisStoreBuilder {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    let n = STORES.fetch_add(1, Ordering::Relaxed);
    RedisStore::builder(server.url())
        .prefix(format!("test{n}:session:"))
        .clock(clock.clone())
}

fn provider_for(store: RedisStore, clock: &ManualClock) -> Provider {
    let config = SessionConfig::development()
        .idle_timeout(IDLE)
        .refresh_interval(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    SessionProvider::new(store, config)
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn tag(name: &str) -> u32 {
    FieldDef::tag_of(name)
}

/// The hash field name of the field `name`: its tag's 4 bytes, big-endian.
fn field(name: &str) -> Vec<u8> {
    tag(name).to_be_bytes().to_vec()
}

/// The name earlier versions gave the field `name`.
fn legacy_field(name: &str) -> Vec<u8> {
    format!("f:{:08x}", tag(name)).into_bytes()
}

/// The type fingerprint stored before the value of the field `name` of [`AppSession`].
fn fingerprint(name: &str) -> u16 {
    <AppSession as SessionData>::FIELDS
        .iter()
        .find(|def| def.name == name)
        .map(|def| def.fingerprint)
        .unwrap()
}

// The contract, each case a test (`plain::create_never_overwrites`, …), on the shared
// server: every store has a key prefix of its own.
session::store_contract!(plain, |clock| async move {
    builder(RedisServer::shared(), &clock).build().await.unwrap()
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_saves_of_different_fields_both_survive() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let id = session.id().expose();

    // Two overlapping requests of one user, each changing its own field.
    let mut first = provider.load(&id).await.unwrap().unwrap();
    let mut second = provider.load(&id).await.unwrap().unwrap();
    *first.visits_mut() += 5;
    second.set_theme("dark".into());
    let mut stats = CommandStats::new(&server).await;
    assert_eq!(provider.save(&mut first).await.unwrap(), SaveOutcome::Updated);
    assert_eq!(provider.save(&mut second).await.unwrap(), SaveOutcome::Updated);
    assert_eq!(
        stats.delta().await,
        counts(&[("evalsha", 3), ("hmget", 3), ("hset", 2)]),
        "the second save found the session changed since it read it, got its current value in \
         the same answer and wrote its change merged into that one: no extra read"
    );

    let loaded = provider.load(&id).await.unwrap().unwrap();
    assert_eq!(*loaded.visits(), 5, "the first request's change survived");
    assert_eq!(loaded.theme(), "dark", "the second request's change survived");
    assert_eq!(loaded.user().as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_the_server_lost_are_loaded_again_when_next_run() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut kept = provider.create().unwrap();
    provider.save(&mut kept).await.unwrap();
    let mut ended = provider.create().unwrap();
    provider.save(&mut ended).await.unwrap();

    // A restart without persistence, a failover to a fresh replica or an operator's flush.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw(&server).await)
        .await
        .unwrap();

    *kept.visits_mut() += 1;
    assert_eq!(
        provider.save(&mut kept).await.unwrap(),
        SaveOutcome::Updated,
        "the update script"
    );
    ended.delete();
    assert_eq!(
        provider.save(&mut ended).await.unwrap(),
        SaveOutcome::Deleted,
        "the delete script"
    );
    let mut created = provider.create().unwrap();
    assert_eq!(
        provider.save(&mut created).await.unwrap(),
        SaveOutcome::Created,
        "the create script"
    );
    let loaded = provider.load(&kept.id().expose()).await.unwrap().unwrap();
    assert_eq!(*loaded.visits(), 1);
    assert!(provider.load(&ended.id().expose()).await.unwrap().is_none());
}

/// Command counts since the last call, from Redis's own `INFO commandstats`, without the
/// `INFO` calls themselves. Commands run inside a script are counted too, so a save shows
/// one `evalsha` plus the script's own commands.
struct CommandStats {
    connection: redis::aio::MultiplexedConnection,
    last: BTreeMap<String, u64>,
}

impl CommandStats {
    async fn new(server: &RedisServer) -> Self {
        let mut stats = Self {
            connection: raw(server).await,
            last: BTreeMap::new(),
        };
        stats.last = stats.read().await;
        stats
    }

    async fn read(&mut self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.connection)
            .await
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
                let calls = rest.split(',').next()?.parse().ok()?;
                (name != "info").then(|| (name.to_owned(), calls))
            })
            .collect()
    }

    async fn delta(&mut self) -> BTreeMap<&'static str, u64> {
        let now = self.read().await;
        let delta = now
            .iter()
            .filter_map(|(name, &calls)| {
                let before = self.last.get(name).copied().unwrap_or(0);
                let name: &'static str = Box::leak(name.clone().into_boxed_str());
                (calls > before).then_some((name, calls - before))
            })
            .collect();
        self.last = now;
        delta
    }
}

fn counts(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_load_and_every_save_is_exactly_one_round_trip() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut stats = CommandStats::new(&server).await;
    // The script's own commands: liveness and index membership in one read, the write, the
    // TTL; no index commands for a session type without an index; no signature, which only
    // a clustered store in front asks for.
    let script = |extra: &[(&'static str, u64)]| {
        let mut all = counts(&[("evalsha", 1), ("hmget", 1), ("hset", 1), ("pexpire", 1)]);
        for (name, calls) in extra {
            *all.entry(name).or_default() += calls;
        }
        all
    };

    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Created);
    assert_eq!(stats.delta().await, script(&[("del", 1)]), "create");

    let id = session.id().expose();
    let mut session = provider.load(&id).await.unwrap().unwrap();
    assert_eq!(
        stats.delta().await,
        counts(&[("hget", 1)]),
        "load: the whole session is one value"
    );
    let unknown = SessionId::generate().unwrap().expose();
    assert!(provider.load(&unknown).await.unwrap().is_none());
    assert_eq!(
        stats.delta().await,
        counts(&[("hget", 1), ("hgetall", 1)]),
        "load of no session: the hash read whole tells it from one of an earlier version"
    );

    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Unchanged);
    assert_eq!(stats.delta().await, counts(&[]), "an unchanged session is not written");

    *session.visits_mut() += 1;
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Updated);
    let mut update = script(&[]);
    update.remove("pexpire");
    assert_eq!(
        stats.delta().await,
        update,
        "update, its expiry unmoved: the TTL runs to the end of the expiry's minute already"
    );

    clock.advance(Duration::from_secs(120));
    let mut session = provider.load(&id).await.unwrap().unwrap();
    stats.delta().await;
    assert_eq!(provider.save(&mut session).await.unwrap(), SaveOutcome::Refreshed);
    assert_eq!(stats.delta().await, script(&[]), "sliding refresh");

    provider.regenerate_id(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        script(&[("hget", 1), ("del", 1)]),
        "regenerate: the target's liveness, then the source deleted and the target written"
    );
    *session.visits_mut() += 1;
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        update,
        "a save after the regenerate writes against the revision the rename left: no read"
    );

    provider.delete(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        counts(&[("evalsha", 1), ("hget", 1), ("del", 1)]),
        "delete (and its index membership, if it had one)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_runs_to_the_end_of_the_expirys_minute_and_moves_only_with_that_minute() {
    let server = RedisServer::start();
    let idle = IDLE.as_millis() as u64;
    // The session expires exactly at the start of a minute.
    let minute_start = (ManualClock::new().now_ms() / 60_000 + 10) * 60_000;
    let clock = ManualClock::at_ms(minute_start - idle);
    let store = builder(&server, &clock).prefix("ttl:").build().await.unwrap();
    let provider = provider_for(store, &clock);
    let raw = raw(&server).await;
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let id = session.id().expose();
    let name = format!("ttl:{{{}}}", session.id().store_key().to_hex());
    // Advances the clock by `secs`, then loads, changes the visits if `change` and saves;
    // returns the save's outcome and the key's TTL after it.
    let visit = |secs: u64, change: bool| {
        let (clock, provider, id, name, mut raw) = (&clock, &provider, &id, &name, raw.clone());
        async move {
            clock.advance(Duration::from_secs(secs));
            let mut session = provider.load(id).await.unwrap().unwrap();
            if change {
                *session.visits_mut() += 1;
            }
            let outcome = provider.save(&mut session).await.unwrap();
            let pttl: u64 = redis::cmd("PTTL").arg(name).query_async(&mut raw).await.unwrap();
            (outcome, pttl)
        }
    };
    let created: u64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut raw.clone())
        .await
        .unwrap();
    assert!(
        (idle + 55_000..=idle + 60_000).contains(&created),
        "created: until the end of the expiry's minute, {created} ms"
    );

    // 30 s later the update moves the expiry 30 s on, within its minute: the TTL stays (the
    // update writes no PEXPIRE, which would have set it to the idle time left).
    let (outcome, kept) = visit(30, true).await;
    assert_eq!(outcome, SaveOutcome::Updated);
    assert!(
        (idle + 55_000..=created).contains(&kept),
        "an update within the expiry's minute keeps the TTL: {kept} ms"
    );

    // 90 s after creation, a sliding refresh moves the expiry 90 s on, into the next minute:
    // the TTL runs to that minute's end, 30 s after the new expiry.
    let (outcome, moved) = visit(60, false).await;
    assert_eq!(outcome, SaveOutcome::Refreshed);
    assert!(
        (idle + 25_000..=idle + 30_000).contains(&moved),
        "a refresh into a later minute moves the TTL: {moved} ms"
    );
    assert_eq!(
        provider.load(&id).await.unwrap().unwrap().visits(),
        &1,
        "and the session is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layout_is_one_hash_per_session_holding_its_whole_value_and_a_ttl() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = builder(&server, &clock).prefix("app:s:").build().await.unwrap();
    let provider = provider_for(store, &clock);
    let mut raw = raw(&server).await;

    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let name = format!("app:s:{{{}}}", session.id().store_key().to_hex());
    let names: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut raw).await.unwrap();
    assert_eq!(
        names,
        std::slice::from_ref(&name),
        "one key, the digest as its hash tag"
    );

    let mut fields: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(&name).query_async(&mut raw).await.unwrap();
    fields.sort();
    assert_eq!(
        fields,
        [b"w".to_vec(), b"x".to_vec()],
        "the whole session, and its expiry for the scripts"
    );
    let expiry: u64 = redis::cmd("HGET")
        .arg(&name)
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(expiry, session.meta().expires_ms());
    let created = whole(&mut raw, &name).await;
    assert_eq!(created.revision, 1);
    assert_eq!(
        created.meta.len(),
        33,
        "the metadata of a session of the configured lifetimes"
    );
    let tags: Vec<u32> = created.fields.iter().map(|field| field.unwrap().0).collect();
    assert_eq!(tags, [tag("user")], "fields at their default are not stored");
    assert_eq!(
        created.fields.get(tag("user")).unwrap().unwrap(),
        [&[0][..], &fingerprint("user").to_le_bytes(), &[1, 5], b"alice"].concat(),
        "a plain value: marker 0, the type fingerprint, the postcard bytes"
    );

    let pttl: i64 = redis::cmd("PTTL").arg(&name).query_async(&mut raw).await.unwrap();
    let idle = IDLE.as_millis() as i64;
    assert!(
        (idle - 5_000..=idle + 60_000).contains(&pttl),
        "the TTL follows the idle deadline, to the end of its minute: {pttl} ms"
    );

    // Every write stores the next revision; a change written by another app meanwhile is
    // kept: the save merges into it.
    let mut elsewhere = created.clone();
    elsewhere.revision = 2;
    elsewhere.fields.push(
        tag("theme"),
        &[&[0][..], &fingerprint("theme").to_le_bytes(), b"\x04blue"].concat(),
    );
    set_whole(&mut raw, &name, &elsewhere).await;
    *session.visits_mut() = 7;
    provider.save(&mut session).await.unwrap();
    assert_eq!(whole(&mut raw, &name).await.revision, 3);
    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.theme(), "blue", "the other write's change survived");
    assert_eq!(*loaded.visits(), 7);
    assert_eq!(loaded.user().as_deref(), Some("alice"));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_of_the_earlier_layout_is_read_and_its_next_save_rewrites_it_whole() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut raw = raw(&server).await;
    let (session, name) = alice_in_dark(&provider, &server).await;
    let whole = whole(&mut raw, &name).await;
    let value = |field: &str| whole.fields.get(tag(field)).unwrap().unwrap().to_vec();
    let language = [&[0][..], &fingerprint("language").to_le_bytes(), b"\x01\x02fr"].concat();

    // The hash an earlier version wrote for this session: the metadata in `m`, the fields
    // as created packed in `d`, `d1` …, a field changed since in a hash field of its own.
    let mut packed = FieldRecord::new();
    packed.push(tag("user"), &value("user"));
    let mut second = FieldRecord::new();
    second.push(tag("theme"), &value("theme"));
    let members = [
        (b"m".to_vec(), whole.meta.clone()),
        (b"x".to_vec(), session.meta().expires_ms().to_string().into_bytes()),
        (b"d".to_vec(), packed.as_bytes().to_vec()),
        (b"d1".to_vec(), second.as_bytes().to_vec()),
        (field("language"), language),
    ];
    write_earlier_layout(&mut raw, &name, &members).await;

    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("alice"));
    assert_eq!(loaded.theme(), "dark");
    assert_eq!(loaded.language().as_deref(), Some("fr"));

    *loaded.visits_mut() = 3;
    provider.save(&mut loaded).await.unwrap();
    let mut members: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(&name).query_async(&mut raw).await.unwrap();
    members.sort();
    assert_eq!(members, [b"w".to_vec(), b"x".to_vec()], "rewritten whole");
    let pttl: i64 = redis::cmd("PTTL").arg(&name).query_async(&mut raw).await.unwrap();
    assert!(pttl > 0, "with its TTL");
    let reloaded = provider.get(session.id()).await.unwrap();
    assert_eq!(reloaded.user().as_deref(), Some("alice"));
    assert_eq!(reloaded.theme(), "dark");
    assert_eq!(reloaded.language().as_deref(), Some("fr"));
    assert_eq!(*reloaded.visits(), 3);
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_set_back_to_its_default_is_dropped_and_earlier_field_names_are_read() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut raw = raw(&server).await;
    let (mut session, name) = alice_in_dark(&provider, &server).await;
    assert!(stored_field(&mut raw, &name, "theme").await.is_some());

    session.set_theme("light".into());
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        stored_field(&mut raw, &name, "theme").await,
        None,
        "back at its default: no longer stored"
    );
    assert_eq!(provider.get(session.id()).await.unwrap().theme(), "light");
    let meta = whole(&mut raw, &name).await.meta;

    // Hashes of earlier versions: a field's own hash field (its last change) wins over its
    // packed copy, which wins over a still older name (`f:<8 hex digits>`); an empty own
    // value is a field set back to its default.
    let user = |name: &str| {
        [
            &[0][..],
            &fingerprint("user").to_le_bytes(),
            &[1, name.len() as u8],
            name.as_bytes(),
        ]
        .concat()
    };
    let theme = [&[0][..], &fingerprint("theme").to_le_bytes(), b"\x04dark"].concat();
    let mut packed = FieldRecord::new();
    packed.push(tag("user"), &user("packed"));
    packed.push(tag("theme"), &theme);
    let legacy = |fields: &[(Vec<u8>, Vec<u8>)]| {
        let (name, mut raw) = (name.clone(), raw.clone());
        let mut members = vec![
            (b"m".to_vec(), meta.clone()),
            (b"x".to_vec(), (u64::MAX / 2).to_string().into_bytes()),
        ];
        members.extend_from_slice(fields);
        async move { write_earlier_layout(&mut raw, &name, &members).await }
    };
    legacy(&[
        (legacy_field("user"), user("oldest")),
        (b"d".to_vec(), packed.as_bytes().to_vec()),
    ])
    .await;
    assert_eq!(
        provider.get(session.id()).await.unwrap().user().as_deref(),
        Some("packed"),
        "the packed copy is newer than the oldest name"
    );
    legacy(&[(legacy_field("user"), user("oldest"))]).await;
    assert_eq!(
        provider.get(session.id()).await.unwrap().user().as_deref(),
        Some("oldest"),
        "the oldest name is read"
    );
    legacy(&[
        (b"d".to_vec(), packed.as_bytes().to_vec()),
        (field("user"), user("own")),
        (field("theme"), Vec::new()),
    ])
    .await;
    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("own"), "a field's own hash field wins");
    assert_eq!(loaded.theme(), "light", "an empty own value hides the packed copy");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_compressed_and_read_back() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = builder(&server, &clock).compress_above(Some(64)).build().await.unwrap();
    let provider = provider_for(store.clone(), &clock);
    let mut session = provider.create().unwrap();
    let long = "compressible ".repeat(200);
    session.set_user(Some(long.clone()));
    session.set_language(Some("en".into()));
    provider.save(&mut session).await.unwrap();

    let name = raw_key(&session.id().store_key(), &server).await;
    let stored = stored_field(&mut raw(&server).await, &name, "user").await.unwrap();
    assert_eq!(stored[0], 1, "marked gzip");
    assert!(stored.len() < long.len() / 4, "{} bytes stored", stored.len());

    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some(long.as_str()));
    assert_eq!(loaded.language().as_deref(), Some("en"));
}

/// A session's whole value, the hash field `w`, as the store's documentation gives its
/// bytes: the revision, the metadata (after its varint length), the fields.
#[derive(Debug, Clone)]
struct Whole {
    revision: u64,
    meta: Vec<u8>,
    fields: FieldRecord,
}

impl Whole {
    fn parse(bytes: &[u8]) -> Self {
        let revision = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let (mut len, mut at) = (0usize, 8);
        for shift in (0..).step_by(7) {
            let byte = bytes[at];
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        Self {
            revision,
            meta: bytes[at..at + len].to_vec(),
            fields: FieldRecord::from_bytes(bytes[at + len..].to_vec()),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.revision.to_le_bytes().to_vec();
        let mut len = self.meta.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(&self.meta);
        out.extend_from_slice(self.fields.as_bytes());
        out
    }
}

/// The whole value of the session hash `key`.
async fn whole(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Whole {
    let bytes: Vec<u8> = redis::cmd("HGET").arg(key).arg("w").query_async(raw).await.unwrap();
    Whole::parse(&bytes)
}

/// Replaces the whole value of the session hash `key`, as another writer could.
async fn set_whole(raw: &mut redis::aio::MultiplexedConnection, key: &str, whole: &Whole) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg("w")
        .arg(whole.to_bytes())
        .query_async(raw)
        .await
        .unwrap();
}

/// Replaces the session hash `key` with `members`, as an earlier version of the store wrote
/// a session (with a TTL of a minute).
async fn write_earlier_layout(raw: &mut redis::aio::MultiplexedConnection, key: &str, members: &[(Vec<u8>, Vec<u8>)]) {
    let _: () = redis::cmd("DEL").arg(key).query_async(raw).await.unwrap();
    let _: () = redis::cmd("HSET").arg(key).arg(members).query_async(raw).await.unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(60_000)
        .query_async(raw)
        .await
        .unwrap();
}

/// The stored value of the session field `name` in the hash `key`.
async fn stored_field(raw: &mut redis::aio::MultiplexedConnection, key: &str, name: &str) -> Option<Vec<u8>> {
    whole(raw, key).await.fields.get(tag(name)).unwrap().map(<[u8]>::to_vec)
}

/// A saved session of alice's with the dark theme, and its key in Redis.
async fn alice_in_dark(provider: &Provider, server: &RedisServer) -> (session::Session<AppSession>, String) {
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    session.set_theme("dark".into());
    provider.save(&mut session).await.unwrap();
    let name = raw_key(&session.id().store_key(), server).await;
    (session, name)
}

/// The key a store wrote for `key`, found by its digest.
async fn raw_key(key: &session::store::StoreKey, server: &RedisServer) -> String {
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{{{}}}", key.to_hex()))
        .query_async(&mut raw(server).await)
        .await
        .unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    names.into_iter().next().unwrap()
}

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), Secret::generate().unwrap())
}

// The contract on an encrypted, compressing store: `encrypted::create_never_overwrites`, ….
session::store_contract!(encrypted, |clock| async move {
    builder(RedisServer::shared(), &clock)
        .encryption(ring())
        .compress_above(Some(16))
        .build()
        .await
        .unwrap()
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_values_show_no_plaintext_at_rest_and_never_open_as_cookies() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let ring = ring();
    let store = builder(&server, &clock)
        .prefix("enc:")
        .encryption(ring.clone())
        .build()
        .await
        .unwrap();
    let provider = provider_for(store.clone(), &clock);
    let mut session = provider.create().unwrap();
    let secret = "alice-secret-4f2a9c";
    session.set_user(Some(secret.into()));
    session.set_language(Some("en-GB".into()));
    provider.save(&mut session).await.unwrap();

    let name = raw_key(&session.id().store_key(), &server).await;
    let mut raw = raw(&server).await;
    let hash: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(&name).query_async(&mut raw).await.unwrap();
    let dump: Vec<u8> = hash
        .iter()
        .flat_map(|(field, value)| [field.clone(), value.clone()].concat())
        .collect();
    assert!(
        !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "no plaintext at rest"
    );
    assert!(!dump.windows(5).any(|w| w == b"en-GB"));
    let user = stored_field(&mut raw, &name, "user").await.unwrap();
    assert_eq!(user[0], 2, "marked sealed");

    // The envelope is bound to the store's purpose: it does not open as a cookie.
    let text = std::str::from_utf8(&user[1..]).unwrap();
    let now = clock.now_ms() / 1000;
    assert!(
        ring.open(&Purpose::store("redis").unwrap(), text, now, &OpenLimits::default())
            .is_ok()
    );
    assert!(
        ring.open(&Purpose::cookie("session").unwrap(), text, now, &OpenLimits::default())
            .is_err()
    );

    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some(secret));
    assert_eq!(loaded.language().as_deref(), Some("en-GB"));

    // Another key ring reads nothing, and a plain store does not adopt sealed data.
    let key = session.id().store_key();
    let foreign = builder(&server, &clock)
        .prefix("enc:")
        .encryption(self::ring())
        .build()
        .await
        .unwrap();
    let plain = builder(&server, &clock).prefix("enc:").build().await.unwrap();
    assert_eq!(foreign.load(&key).await.unwrap(), None);
    assert_eq!(plain.load(&key).await.unwrap(), None);
    assert!(store.load(&key).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_values_copied_into_another_session_do_not_open_and_survive_regeneration() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = builder(&server, &clock)
        .prefix("bind:")
        .encryption(ring())
        .build()
        .await
        .unwrap();
    let provider = provider_for(store.clone(), &clock);
    let mut victim = provider.create().unwrap();
    victim.set_user(Some("alice".into()));
    provider.save(&mut victim).await.unwrap();
    let mut attacker = provider.create().unwrap();
    attacker.set_user(Some("mallory".into()));
    attacker.set_language(Some("fr".into()));
    provider.save(&mut attacker).await.unwrap();

    // Someone who can write to Redis copies the victim's sealed `user` into their session.
    let (victim_key, attacker_key) = (
        raw_key(&victim.id().store_key(), &server).await,
        raw_key(&attacker.id().store_key(), &server).await,
    );
    let mut raw = raw(&server).await;
    let stolen = stored_field(&mut raw, &victim_key, "user").await.unwrap();
    let mut forged = whole(&mut raw, &attacker_key).await;
    let mut fields = FieldRecord::new();
    fields.push(tag("user"), &stolen);
    forged.fields.merge(&fields).unwrap();
    set_whole(&mut raw, &attacker_key, &forged).await;
    let loaded = provider.get(attacker.id()).await.unwrap();
    assert_eq!(loaded.user(), &None, "a field moved from another session does not open");
    assert_eq!(
        loaded.language().as_deref(),
        Some("fr"),
        "the rest of the session is intact"
    );

    // Copying the victim's metadata too (the whole hash) gives no session at all.
    let _: () = redis::cmd("COPY")
        .arg(&victim_key)
        .arg(&attacker_key)
        .arg("REPLACE")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        provider.try_get(attacker.id()).await.unwrap().is_none(),
        "metadata bound to its key"
    );

    // A regenerated ID moves the session to another key; its sealed fields still open.
    let mut victim = provider.get(victim.id()).await.unwrap();
    victim.regenerate_id().unwrap();
    victim.set_language(Some("de".into()));
    provider.save(&mut victim).await.unwrap();
    let reloaded = provider.get(victim.id()).await.unwrap();
    assert_eq!(reloaded.user().as_deref(), Some("alice"));
    assert_eq!(reloaded.language().as_deref(), Some("de"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_records_are_no_session_and_unreadable_fields_take_their_default() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = builder(&server, &clock).build().await.unwrap();
    let provider = provider_for(store.clone(), &clock);
    let mut raw = raw(&server).await;
    let (mut session, name) = alice_in_dark(&provider, &server).await;
    session.set_language(Some("en".into()));
    provider.save(&mut session).await.unwrap();
    let stored = whole(&mut raw, &name).await;

    let mut garbled = stored.clone();
    let mut theme = FieldRecord::new();
    theme.push(tag("theme"), b"\x07garbage");
    garbled.fields.merge(&theme).unwrap();
    set_whole(&mut raw, &name, &garbled).await;
    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.theme(), "light", "an unreadable field takes its default");
    assert_eq!(loaded.user().as_deref(), Some("alice"), "the others are kept");
    assert_eq!(loaded.language().as_deref(), Some("en"));

    // Fields cut short: those before the cut are kept, the rest keep their default.
    let mut cut = stored.clone();
    let bytes = cut.fields.as_bytes();
    let language_at = cut
        .fields
        .iter()
        .map(|field| field.unwrap())
        .take_while(|&(field_tag, _)| field_tag != tag("language"))
        .map(|(_, value)| 4 + 1 + value.len())
        .sum::<usize>();
    assert!(
        language_at > 0 && language_at < bytes.len(),
        "the language is not stored first"
    );
    cut.fields = FieldRecord::from_bytes(bytes[..bytes.len() - 1].to_vec());
    set_whole(&mut raw, &name, &cut).await;
    let mut loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("alice"), "read up to the cut");
    assert_eq!(loaded.language(), &None);
    *loaded.visits_mut() = 2;
    provider.save(&mut loaded).await.unwrap();
    let saved = provider.get(session.id()).await.unwrap();
    assert_eq!(
        (saved.user().as_deref(), saved.language(), *saved.visits()),
        (Some("alice"), &None, 2),
        "a save writes what was readable and its change"
    );

    let mut corrupt = stored.clone();
    corrupt.meta = b"short".to_vec();
    set_whole(&mut raw, &name, &corrupt).await;
    assert_eq!(
        store.load(&session.id().store_key()).await.unwrap(),
        None,
        "corrupt metadata is no session"
    );
    for malformed in [&b""[..], b"\x01\x00\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00\x7f"] {
        let _: () = redis::cmd("HSET")
            .arg(&name)
            .arg("w")
            .arg(malformed)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(
            store.load(&session.id().store_key()).await.unwrap(),
            None,
            "a malformed whole value is no session: {malformed:?}"
        );
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_operations_see_only_this_stores_prefix() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let a = builder(&server, &clock).prefix("a:").build().await.unwrap();
    // A prefix with glob characters must match literally.
    let b = builder(&server, &clock).prefix("a*:").build().await.unwrap();
    let mut raw = raw(&server).await;
    let _: () = redis::cmd("SET")
        .arg("a:unrelated")
        .arg("1")
        .query_async(&mut raw)
        .await
        .unwrap();
    let record = Record {
        meta: SessionMeta::new(clock.now_ms(), 60_000, 600_000),
        fields: FieldRecord::new(),
    };
    for _ in 0..5 {
        assert!(
            a.create(&SessionId::generate().unwrap().store_key(), &record)
                .await
                .unwrap()
        );
    }
    for _ in 0..3 {
        assert!(
            b.create(&SessionId::generate().unwrap().store_key(), &record)
                .await
                .unwrap()
        );
    }
    assert_eq!(a.count().await.unwrap(), 5);
    assert_eq!(b.count().await.unwrap(), 3);

    clock.advance(Duration::from_secs(61));
    assert_eq!(a.count().await.unwrap(), 0, "expired by the store's clock");
    let page = a.scan(0, 100).await.unwrap();
    assert!(page.records.is_empty(), "a scan returns no expired record");

    assert_eq!(a.clear().await.unwrap(), 0, "nothing live was cleared");
    let left: Vec<String> = redis::cmd("KEYS").arg("a:*").query_async(&mut raw).await.unwrap();
    assert_eq!(left, ["a:unrelated"], "clear removed this store's keys only");
    let b_keys: Vec<String> = redis::cmd("KEYS").arg("a\\*:*").query_async(&mut raw).await.unwrap();
    assert_eq!(b_keys.len(), 3, "the other store's keys are untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfiguration_and_unreachable_servers_fail_at_build() {
    let error = RedisStore::builder("not a url").build().await.unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");

    let error = RedisStore::builder("redis://127.0.0.1:1/")
        .command_timeout(Duration::ZERO)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error}");

    // A port nobody listens on: a stopped server.
    let port = {
        let server = RedisServer::start();
        server.port()
    };
    let started = Instant::now();
    let error = RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
        .command_timeout(Duration::from_millis(300))
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .build()
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // rediss:// (feature redis-tls) against a plain-text server: the TLS handshake fails
    // as an unavailable backend, not as a panic or a configuration error.
    let plain = RedisServer::start();
    let error = RedisStore::builder(format!("rediss://127.0.0.1:{}/", plain.port()))
        .command_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
}

const TIMEOUT: Duration = Duration::from_millis(250);

fn resilient(builder: RedisStoreBuilder) -> RedisStoreBuilder {
    builder
        .command_timeout(TIMEOUT)
        .retry(RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .circuit_breaker(BreakerConfig {
            failure_threshold: 3,
            reset_timeout: Duration::from_millis(800),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_fails_fast_opens_the_breaker_and_recovers_without_loss() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = resilient(builder(&server, &clock)).build().await.unwrap();
    let provider = provider_for(store.clone(), &clock);
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    *session.visits_mut() = 41;
    session.set_language(Some("fr".into()));
    provider.save(&mut session).await.unwrap();
    let id = session.id().clone();
    let mut other = provider.create().unwrap();
    provider.save(&mut other).await.unwrap();

    server.freeze();

    // A write is not retried: it fails after one timeout.
    other.set_user(Some("bob".into()));
    let started = Instant::now();
    let error = provider.save(&mut other).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, Error::Timeout(_)), "{error}");
    assert!(elapsed >= TIMEOUT && elapsed < 2 * TIMEOUT, "{elapsed:?}");

    // A load is retried once, then the breaker (3 failures) opens.
    let started = Instant::now();
    let error = provider.get(&id).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_unavailable(), "{error}");
    assert!(elapsed < 3 * TIMEOUT, "{elapsed:?}");
    assert_eq!(store.breaker_state(), BreakerState::Open);

    // While open, calls fail at once.
    let started = Instant::now();
    let error = provider.get(&id).await.unwrap_err();
    assert!(matches!(error, Error::CircuitOpen { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());

    server.thaw();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let loaded = provider.get(&id).await.expect("recovered after the reset timeout");
    assert_eq!(store.breaker_state(), BreakerState::Closed);
    assert_eq!(loaded.user().as_deref(), Some("alice"));
    assert_eq!(*loaded.visits(), 41);
    assert_eq!(loaded.language().as_deref(), Some("fr"));
    assert_eq!(loaded.theme(), "light");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_reconnected_without_rebuilding_the_store() {
    let mut server = RedisServer::start();
    let clock = ManualClock::new();
    let store = resilient(builder(&server, &clock)).build().await.unwrap();
    let provider = provider_for(store, &clock);
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();

    server.restart();

    // The old session is gone (no persistence); the store answers again once reconnected.
    let deadline = Instant::now() + Duration::from_secs(5);
    let reloaded = loop {
        match provider.try_get(session.id()).await {
            Ok(found) => break found,
            Err(error) => {
                assert!(Instant::now() < deadline, "no recovery within 5 s: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(reloaded.is_none(), "the restarted server has no data");

    // New sessions work, scripts included (Redis lost them too).
    let mut fresh = provider.create().unwrap();
    fresh.set_user(Some("bob".into()));
    provider.save(&mut fresh).await.unwrap();
    *fresh.visits_mut() += 1;
    provider.save(&mut fresh).await.unwrap();
    let loaded = provider.get(fresh.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("bob"));
    assert_eq!(*loaded.visits(), 1);
}

#[tokio::test]
async fn a_password_protected_server_is_used_with_the_password_in_the_url_and_refused_without() {
    let server = RedisServer::start_with_password(Some("correct-horse-battery"));
    let clock = ManualClock::new();
    let provider = provider_for(builder(&server, &clock).build().await.unwrap(), &clock);
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let loaded = provider.get(session.id()).await.unwrap();
    assert_eq!(loaded.user().as_deref(), Some("alice"));

    let port = server.port();
    for (url, what) in [
        (format!("redis://127.0.0.1:{port}/"), "no password"),
        (format!("redis://:wrong-password@127.0.0.1:{port}/"), "a wrong password"),
    ] {
        let error = RedisStore::builder(url)
            .command_timeout(Duration::from_millis(500))
            .retry(RetryPolicy::none())
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("a store with {what} was built"));
        let text = error.to_string();
        assert!(
            text.contains("NOAUTH") || text.contains("WRONGPASS") || text.contains("uthentication"),
            "{what}: the error says why: {text}"
        );
    }
}

#[tokio::test]
async fn a_tls_server_is_used_with_its_ca_and_refused_when_its_certificate_is_not_trusted() {
    let server = RedisServer::start_tls();
    let clock = ManualClock::new();
    let store = builder(&server, &clock)
        .tls_root_certificates(server.ca_pem())
        .build()
        .await
        .unwrap();
    let provider = provider_for(store, &clock);
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        provider.get(session.id()).await.unwrap().user().as_deref(),
        Some("alice"),
        "a round trip over rediss://"
    );

    // The system's roots do not include the test's CA: the certificate is refused.
    let error = RedisStore::builder(server.url())
        .command_timeout(Duration::from_millis(500))
        .retry(RetryPolicy::none())
        .build()
        .await
        .expect_err("an untrusted certificate was accepted");
    assert!(error.is_unavailable(), "{error}");
}

#[test]
fn expired_sessions_are_told_apart_within_the_retention() {
    session::test_util::run(session::test_util::cases::expired_sessions_are_told_apart(
        |clock| async move {
            builder(RedisServer::shared(), &clock)
                .expired_retention(Duration::from_secs(3600))
                .build()
                .await
                .unwrap()
        },
    ));
}

common::lifetimes::lifetime_cases!(
    |clock| async move { builder(RedisServer::shared(), &clock).build().await.unwrap() }
);

session::index_contract!(indexed, |clock| async move {
    builder(RedisServer::shared(), &clock).build().await.unwrap()
});

// A prefix that would end or escape a Lua string literal: the scripts, which name index
// keys themselves, keep every index under it all the same.
session::index_contract!(indexed_under_a_prefix_with_quotes, |clock| async move {
    builder(RedisServer::shared(), &clock)
        .prefix(quoting_prefix())
        .build()
        .await
        .unwrap()
});

/// A new prefix for each store, each with a quote, an apostrophe, a backslash and brackets.
fn quoting_prefix() -> String {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    format!("q\"'\\]]{}:", STORES.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_command_timeout_is_the_only_bound_on_a_slow_answer() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let store = builder(&server, &clock)
        .command_timeout(Duration::from_secs(3))
        .retry(session::resilience::RetryPolicy::none())
        .build()
        .await
        .unwrap();
    let key = session::SessionId::generate().unwrap().store_key();
    assert_eq!(store.load(&key).await.unwrap(), None, "connected");
    // Redis answers nothing for 0.8 s: longer than the client library's own default
    // response timeout (0.5 s), well within the store's.
    server.freeze();
    let thaw = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(800)));
    let started = std::time::Instant::now();
    let (loaded, ()) = tokio::join!(store.load(&key), async {
        tokio::task::spawn_blocking(move || thaw.join().unwrap()).await.unwrap();
        server.thaw();
    });
    assert_eq!(loaded.unwrap(), None, "answered once Redis wakes");
    assert!(started.elapsed() >= Duration::from_millis(700), "it did wait for Redis");
}

/// A session whose user is indexed.
#[derive(SessionData)]
struct Indexed {
    #[session(index)]
    user: Option<String>,
    visits: u64,
}

/// A provider of [`Indexed`] sessions over a store of its own on `server`.
async fn indexed_provider(server: &RedisServer, clock: &ManualClock) -> SessionProvider<Indexed, RedisStore> {
    SessionProvider::new(
        builder(server, clock).build().await.unwrap(),
        SessionConfig::testing().clock(clock.clone()).build().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_hash_of_the_earlier_layout_converted_by_one_save_takes_the_next_merged() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = indexed_provider(&server, &clock).await;
    let mut raw = raw(&server).await;
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    let name = raw_key(&session.id().store_key(), &server).await;
    let stored = whole(&mut raw, &name).await;
    let index: String = redis::cmd("HGET")
        .arg(&name)
        .arg("i")
        .query_async(&mut raw)
        .await
        .unwrap();

    // The same session as an earlier version stored it, in the same index.
    let members = [
        (b"m".to_vec(), stored.meta.clone()),
        (b"x".to_vec(), session.meta().expires_ms().to_string().into_bytes()),
        (b"i".to_vec(), index.into_bytes()),
        (b"d".to_vec(), stored.fields.as_bytes().to_vec()),
    ];
    write_earlier_layout(&mut raw, &name, &members).await;

    // Two overlapping requests read it; the first save converts it, the second finds it
    // converted, merges its change into the converted value and moves it to a new index.
    let id = session.id().expose();
    let mut first = provider.load(&id).await.unwrap().unwrap();
    let mut second = provider.load(&id).await.unwrap().unwrap();
    *first.visits_mut() = 5;
    provider.save(&mut first).await.unwrap();
    assert_eq!(whole_of(&mut raw, &name).await.0, 1, "rewritten whole, revision 1");
    second.set_user(Some("bob".into()));
    provider.save(&mut second).await.unwrap();

    let (revision, mut members) = whole_of(&mut raw, &name).await;
    members.sort();
    assert_eq!(revision, 2);
    assert_eq!(members, [b"i".to_vec(), b"w".to_vec(), b"x".to_vec()]);
    let loaded = provider.load(&id).await.unwrap().unwrap();
    assert_eq!((loaded.user().as_deref(), *loaded.visits()), (Some("bob"), 5));
    assert_eq!(provider.sessions_of(&loaded).await.unwrap().len(), 1, "in bob's index");
    let mut alice = provider.create().unwrap();
    alice.set_user(Some("alice".into()));
    assert!(
        provider.sessions_of(&alice).await.unwrap().is_empty(),
        "and no longer in alice's"
    );

    /// The revision in `w` and the hash's field names.
    async fn whole_of(raw: &mut redis::aio::MultiplexedConnection, name: &str) -> (u64, Vec<Vec<u8>>) {
        let members = redis::cmd("HKEYS").arg(name).query_async(raw).await.unwrap();
        (whole(raw, name).await.revision, members)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_session_joins_its_index_once_and_its_updates_leave_the_index_alone() {
    let server = RedisServer::start();
    let clock = ManualClock::new();
    let provider = indexed_provider(&server, &clock).await;
    let mut stats = CommandStats::new(&server).await;
    let mut session = provider.create().unwrap();
    session.set_user(Some("alice".into()));
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        counts(&[
            ("evalsha", 1),
            ("hmget", 1),
            ("del", 1),
            ("hset", 1),
            ("pexpire", 2),
            ("zadd", 1),
            ("pttl", 1)
        ]),
        "created and added to its index, whose TTL is set"
    );
    *session.visits_mut() += 1;
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        counts(&[("evalsha", 1), ("hmget", 1), ("hset", 1)]),
        "an update under the same index touches no index (nor, its expiry unmoved, the TTL)"
    );
    session.set_user(Some("bob".into()));
    provider.save(&mut session).await.unwrap();
    assert_eq!(
        stats.delta().await,
        counts(&[
            ("evalsha", 1),
            ("hmget", 1),
            ("hset", 1),
            ("pexpire", 1),
            ("zrem", 1),
            ("zadd", 1),
            ("pttl", 1)
        ]),
        "a new user moves it to the new index"
    );
    let listed = provider.sessions_of(&session).await.unwrap();
    assert_eq!(listed.len(), 1);
}
