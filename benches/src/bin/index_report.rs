//! "Log out everywhere": one user's 5 sessions among a million, listed and deleted
//! through the session index on the memory store, Redis and a Redis Cluster, against
//! `delete_where`, which reads every session; and the cookie store end to end with
//! revocation by index off and on. Writes its section of BENCHMARKS.md (between the
//! `index:begin` and `index:end` markers) and its line in the budgets.
//!
//! `cargo run -p session-benches --release --bin index_report [-- OPTIONS]`
//!
//! Options: `--sessions N` (default 1,000,000), `--samples N` (of each index operation,
//! default 101), `--scan-samples N` (of `delete_where`, default 3), `--cluster-sessions N`
//! (default 100,000; 0 skips the cluster), `--runs N` and `--secs S` (cookie end-to-end runs
//! per app and request kind, default 5 of 3 s), `--only memory|redis|cluster|cookie`
//! (measures one part and prints its section without touching BENCHMARKS.md), `--quick` (a
//! small smoke run, printed only). Used internally: `serve COOKIE_APP [REDIS_URL]`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use session::{MemoryStore, RedisStore, SessionConfig, SessionProvider};
use session_benches::{
    apps::BoxError,
    child::{ChildServer, runtime, serve_axum},
    index::{self, Account, CookieApp, Samples, Timings, USER_SESSIONS},
    load::{Clients, Load, Outcome, median},
    memory::rss_bytes,
    stores::OURS_PREFIX,
};
use session_test_support::{RedisCluster, RedisServer, Traffic, redis_cluster};

/// Concurrent saves while filling Redis: enough to keep its connection's pipeline full.
const REDIS_FILL_TASKS: u64 = 128;
/// The budget for a list and a delete-all on Redis.
const TARGET_US: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Memory,
    Redis,
    Cluster,
}

impl Store {
    const ALL: [Store; 3] = [Store::Memory, Store::Redis, Store::Cluster];

    /// The name `--only` takes.
    fn arg(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Redis => "redis",
            Store::Cluster => "cluster",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Redis => "Redis",
            Store::Cluster => "Redis Cluster",
        }
    }
}

impl std::str::FromStr for Store {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "memory" => Ok(Store::Memory),
            "redis" => Ok(Store::Redis),
            "cluster" => Ok(Store::Cluster),
            other => Err(format!("unknown store {other:?}; one of: memory, redis, cluster")),
        }
    }
}

struct Options {
    sessions: u64,
    samples: usize,
    scan_samples: usize,
    cluster_sessions: u64,
    runs: usize,
    secs: f64,
    /// One part only: a store's name, or `cookie`.
    only: Option<String>,
    quick: bool,
    /// The command line's options, for the report.
    args: Vec<String>,
}

fn main() -> Result<(), BoxError> {
    let mut options = Options {
        sessions: 1_000_000,
        samples: 101,
        scan_samples: 3,
        cluster_sessions: 100_000,
        runs: 5,
        secs: 3.0,
        only: None,
        quick: false,
        args: std::env::args().skip(1).collect(),
    };
    if options.args.first().map(String::as_str) == Some("serve") {
        return serve(&options.args[1..]);
    }
    let args = options.args.clone();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--sessions" => options.sessions = value()?.parse()?,
            "--samples" => options.samples = value()?.parse()?,
            "--scan-samples" => options.scan_samples = value()?.parse()?,
            "--cluster-sessions" => options.cluster_sessions = value()?.parse()?,
            "--runs" => options.runs = value()?.parse()?,
            "--secs" => options.secs = value()?.parse()?,
            "--only" => {
                let part = value()?;
                if part != "cookie" {
                    part.parse::<Store>()?;
                }
                options.only = Some(part.clone());
            }
            "--quick" => {
                options.quick = true;
                options.sessions = 10_000;
                options.samples = 11;
                options.scan_samples = 1;
                options.cluster_sessions = 0;
                options.runs = 1;
                options.secs = 0.5;
            }
            other => {
                return Err(format!("unknown option {other}; see the top of benches/src/bin/index_report.rs").into());
            }
        }
    }
    if options.sessions < USER_SESSIONS as u64 {
        return Err(format!("--sessions must be at least {USER_SESSIONS}").into());
    }
    report(&options)
}

/// One store's figures.
struct Figures {
    store: Store,
    sessions: u64,
    fill: Duration,
    fill_tasks: u64,
    /// What the filled sessions take, as text.
    memory: String,
    timings: Timings,
    /// The machine's 1-minute load average before and after.
    load: (f64, f64),
}

fn wanted(options: &Options, part: &str) -> bool {
    options.only.as_deref().is_none_or(|only| only == part)
}

fn report(options: &Options) -> Result<(), BoxError> {
    let started = Instant::now();
    let runtime = runtime()?;
    let mut all = Vec::new();
    for store in Store::ALL {
        if !wanted(options, store.arg()) {
            continue;
        }
        let sessions = match store {
            Store::Cluster => options.cluster_sessions,
            _ => options.sessions,
        };
        if sessions == 0 {
            continue;
        }
        eprintln!("== {}, {sessions} sessions", store.name());
        let load = load_average();
        let mut figures = match store {
            Store::Memory => runtime.block_on(memory(options, sessions))?,
            Store::Redis => redis(options, sessions, &runtime)?,
            Store::Cluster => cluster(options, sessions, &runtime)?,
        };
        figures.load = (load, load_average());
        print_figures(&figures);
        all.push(figures);
    }
    let cookie = if wanted(options, "cookie") {
        eprintln!("== cookie store end to end, revocation off and on");
        Some(cookie_end_to_end(options, &runtime)?)
    } else {
        None
    };
    let mut section = render(options, &all, started.elapsed());
    if let Some(cookie) = &cookie {
        section.push_str(&render_cookie(options, cookie));
    }
    if options.only.is_some() || options.quick {
        print!("{section}");
        return Ok(());
    }
    write_section(&section, budget(&all).as_deref())
}

/// `serve COOKIE_APP [REDIS_URL]`: serves the app on a free loopback port, prints
/// `listening ADDR`, and stops when standard input closes.
fn serve(args: &[String]) -> Result<(), BoxError> {
    let app: CookieApp = args.first().ok_or("serve needs a cookie app")?.parse()?;
    let redis_url = args.get(1).map(String::as_str);
    runtime()?.block_on(async move { serve_axum(index::cookie_router(app, redis_url).await?).await })
}

/// One measured phase of a cookie app.
struct Phase {
    outcome: Outcome,
    /// The Redis traffic of the phase, for the apps that use Redis.
    redis: Option<Traffic>,
}

/// Phases by (app, request kind), one per run.
type CookieRuns = BTreeMap<(usize, &'static str), Vec<Phase>>;

const KINDS: [(&str, &str); 2] = [("read", "/read"), ("rmw", "/rmw")];

fn cookie_end_to_end(options: &Options, runtime: &tokio::runtime::Runtime) -> Result<CookieRuns, BoxError> {
    let redis = RedisServer::try_start()?;
    let url = redis.url();
    let load = Load {
        connections: 32,
        users_per_connection: 8,
        duration: Duration::from_secs_f64(options.secs),
        max_requests_per_connection: 1_000_000,
    };
    let mut servers = Vec::new();
    for app in CookieApp::ALL {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("serve").arg(app.name());
        if app.uses_redis() {
            command.arg(&url);
        }
        let server = ChildServer::spawn(command, app.name())?;
        let clients = runtime.block_on(Clients::connect(server.addr, load, "/init"))?;
        servers.push((app, server, clients));
    }
    // The runs interleave the apps, so a burst of noise from the shared machine hits
    // every app alike rather than one.
    let mut runs = CookieRuns::new();
    for run in 0..options.runs {
        for (slot, (app, _server, clients)) in servers.iter_mut().enumerate() {
            for (kind, path) in KINDS {
                let before = app.uses_redis().then(|| redis.counters()).transpose()?;
                let outcome = runtime.block_on(clients.run(path))?;
                let traffic = match before {
                    Some(before) => Some(Traffic::between(&before, &redis.counters()?)),
                    None => None,
                };
                eprintln!(
                    "run {} {:>34} {kind:>4}: {:>8.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  errors {}",
                    run + 1,
                    app.name(),
                    outcome.per_second(),
                    outcome.p50_us,
                    outcome.p99_us,
                    outcome.errors
                );
                if outcome.errors > 0 {
                    return Err(format!(
                        "{} {kind}: {} failed requests, one of them {}",
                        app.name(),
                        outcome.errors,
                        outcome.a_failure.unwrap_or_default()
                    )
                    .into());
                }
                runs.entry((slot, kind)).or_default().push(Phase {
                    outcome,
                    redis: traffic,
                });
            }
        }
    }
    Ok(runs)
}

/// The requests of the first phase, which the named commands are divided by.
fn first_requests(phases: &[Phase]) -> u64 {
    phases.first().map_or(1, |phase| phase.outcome.requests.max(1))
}

fn render_cookie(options: &Options, runs: &CookieRuns) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "\n### The cookie store with revocation\n\n\
         `CookieSessions` through the axum layer, the session above with its indexed user, revocation off and on \
         (`with_revocation`: every request that opens an indexed cookie checks its generation, cached per index \
         for `revocation_staleness`). 32 keep-alive connections of 8 users each, every user logged in as a user of \
         its own (256 indexes); {} interleaved run(s) of {} s per app and request kind, the app in a child process; \
         medians of the runs, and of the per-run ratio to revocation off. Redis commands per request from \
         `INFO commandstats` of the generation stores' own Redis, those a script runs included (by name: the \
         first run).\n",
        options.runs, options.secs
    );
    let _ = writeln!(
        w,
        "| Cookie store | Request | req/s | vs off | p50 | p99 | Redis commands per request |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---|");
    for (slot, app) in CookieApp::ALL.into_iter().enumerate() {
        for (kind, _) in KINDS {
            let (Some(phases), Some(off)) = (runs.get(&(slot, kind)), runs.get(&(0, kind))) else {
                continue;
            };
            let pick = |f: fn(&Outcome) -> f64| median(phases.iter().map(|phase| f(&phase.outcome)).collect());
            let ratio = median(
                phases
                    .iter()
                    .zip(off)
                    .map(|(phase, off)| phase.outcome.per_second() / off.outcome.per_second())
                    .collect(),
            );
            let calls = median(
                phases
                    .iter()
                    .filter_map(|phase| {
                        Some(phase.redis.as_ref()?.total_calls() as f64 / phase.outcome.requests.max(1) as f64)
                    })
                    .collect(),
            );
            let calls = match phases.first().and_then(|phase| phase.redis.as_ref()) {
                Some(first) if !calls.is_nan() => {
                    let requests = first_requests(phases) as f64;
                    let names = first
                        .calls
                        .iter()
                        .map(|(name, count)| format!("{}×{:.3}", name.to_uppercase(), *count as f64 / requests))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("{calls:.3} ({names})")
                }
                _ => "—".to_owned(),
            };
            let _ = writeln!(
                w,
                "| {} | {kind} | {:.0} | {ratio:.2}× | {:.0} µs | {:.0} µs | {calls} |",
                app.describe(),
                pick(Outcome::per_second),
                pick(|o| o.p50_us),
                pick(|o| o.p99_us)
            );
        }
    }
    w
}

fn config() -> Result<SessionConfig, session::Error> {
    SessionConfig::development().build()
}

async fn fill_and_measure<S>(
    provider: &SessionProvider<Account, S>,
    options: &Options,
    sessions: u64,
    tasks: u64,
) -> Result<(Duration, Timings), BoxError>
where
    S: session::store::IndexStore + session::store::QueryStore + Send + Sync + 'static,
{
    let fill = index::fill(provider, sessions, tasks).await?;
    eprintln!("filled in {fill:.1?}");
    let timings = index::measure(provider, options.samples, options.scan_samples).await?;
    Ok((fill, timings))
}

async fn memory(options: &Options, sessions: u64) -> Result<Figures, BoxError> {
    let store = MemoryStore::builder()
        .capacity(2 * sessions as usize)
        .sweep_interval(Duration::ZERO)
        .build();
    let provider = SessionProvider::<Account, _>::new(store, config()?);
    let before = rss_bytes()?;
    let tasks = 2;
    let fill = index::fill(&provider, sessions, tasks).await?;
    let grown = rss_bytes()?.saturating_sub(before);
    eprintln!("filled in {fill:.1?}");
    let timings = index::measure(&provider, options.samples, options.scan_samples).await?;
    check_count(provider.store(), sessions).await?;
    Ok(Figures {
        store: Store::Memory,
        sessions,
        fill,
        fill_tasks: tasks,
        memory: format!(
            "{} process growth ({:.0} B per session)",
            mib(grown),
            grown as f64 / sessions as f64
        ),
        timings,
        load: (0.0, 0.0),
    })
}

fn redis(options: &Options, sessions: u64, runtime: &tokio::runtime::Runtime) -> Result<Figures, BoxError> {
    let server = RedisServer::try_start()?;
    let used = |server: &RedisServer| -> Result<(u64, u64), BoxError> {
        let info = server.command(&["INFO", "memory"])?;
        Ok((info_field(&info, "used_memory")?, info_field(&info, "used_memory_rss")?))
    };
    let (before, _) = used(&server)?;
    let (fill, timings) = runtime.block_on(async {
        let store = RedisStore::builder(server.url()).prefix(OURS_PREFIX).build().await?;
        let provider = SessionProvider::<Account, _>::new(store, config()?);
        let measured = fill_and_measure(&provider, options, sessions, REDIS_FILL_TASKS).await?;
        check_count(provider.store(), sessions).await?;
        Ok::<_, BoxError>(measured)
    })?;
    let (after, rss) = used(&server)?;
    let grown = after.saturating_sub(before);
    Ok(Figures {
        store: Store::Redis,
        sessions,
        fill,
        fill_tasks: REDIS_FILL_TASKS,
        memory: format!(
            "`used_memory` {} ({:.0} B per session, index sets included), `used_memory_rss` {}",
            mib(grown),
            grown as f64 / sessions as f64,
            mib(rss)
        ),
        timings,
        load: (0.0, 0.0),
    })
}

fn cluster(options: &Options, sessions: u64, runtime: &tokio::runtime::Runtime) -> Result<Figures, BoxError> {
    let cluster = RedisCluster::start();
    let used = |cluster: &RedisCluster| -> Result<u64, BoxError> {
        let mut total = 0;
        for port in cluster.primaries() {
            total += info_field(&redis_cluster::query(port, &["INFO", "memory"])?, "used_memory")?;
        }
        Ok(total)
    };
    let before = used(&cluster)?;
    let (fill, timings) = runtime.block_on(async {
        let store = RedisStore::cluster_builder(cluster.urls())
            .prefix(OURS_PREFIX)
            .build()
            .await?;
        let provider = SessionProvider::<Account, _>::new(store, config()?);
        let measured = fill_and_measure(&provider, options, sessions, REDIS_FILL_TASKS).await?;
        check_count(provider.store(), sessions).await?;
        Ok::<_, BoxError>(measured)
    })?;
    let grown = used(&cluster)?.saturating_sub(before);
    Ok(Figures {
        store: Store::Cluster,
        sessions,
        fill,
        fill_tasks: REDIS_FILL_TASKS,
        memory: format!(
            "`used_memory` {} over the 3 primaries ({:.0} B per session; each replica holds a copy)",
            mib(grown),
            grown as f64 / sessions as f64
        ),
        timings,
        load: (0.0, 0.0),
    })
}

/// Fails unless the store holds `expected` live sessions.
async fn check_count<S: session::store::QueryStore>(store: &S, expected: u64) -> Result<(), BoxError> {
    let count = store.count().await? as u64;
    if count == expected {
        Ok(())
    } else {
        Err(format!("the store holds {count} sessions, not {expected}").into())
    }
}

/// The 1-minute load average, from `/proc/loadavg` (NaN where there is none).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn info_field(info: &str, name: &str) -> Result<u64, BoxError> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
        .ok_or_else(|| format!("no {name} in INFO memory"))?
        .parse()
        .map_err(Into::into)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn time(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

/// The rows: (label, samples of each store).
fn rows(all: &[Figures]) -> Vec<(&'static str, Vec<&Samples>)> {
    let pick = |f: fn(&Timings) -> &Samples| all.iter().map(|figures| f(&figures.timings)).collect();
    vec![
        (
            "baseline: a load of a missing session (one round trip)",
            pick(|t| &t.missing_load),
        ),
        ("list: `sessions_of_index`", pick(|t| &t.list_index)),
        ("list: `sessions_of`", pick(|t| &t.list_of)),
        ("delete all: `delete_index`", pick(|t| &t.delete_index)),
        ("delete all: `delete_all_of`", pick(|t| &t.delete_all_of)),
        (
            "`delete_where(user == …)`, every session read",
            pick(|t| &t.delete_where),
        ),
    ]
}

fn print_figures(figures: &Figures) {
    let store = figures.store.name();
    for (label, samples) in rows(std::slice::from_ref(figures)) {
        let samples = samples[0];
        eprintln!(
            "{store} {label}: median {}, p10 {}, p90 {} ({} samples)",
            time(samples.median()),
            time(samples.quantile(0.1)),
            time(samples.quantile(0.9)),
            samples.0.len()
        );
    }
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "an unknown date".to_owned(), |text| text.trim().to_owned())
}

/// Whether `figures` meet the Redis budget: (met, list median, delete-all median).
fn redis_verdict(figures: &Figures) -> (bool, f64, f64) {
    let timings = &figures.timings;
    let list = timings.list_index.median().max(timings.list_of.median());
    let delete = timings.delete_index.median().max(timings.delete_all_of.median());
    (list < TARGET_US && delete < TARGET_US, list, delete)
}

/// The budget line on one Redis server, if it was measured.
fn budget(all: &[Figures]) -> Option<String> {
    let figures = all.iter().find(|figures| figures.store == Store::Redis)?;
    let (met, list, delete) = redis_verdict(figures);
    Some(format!(
        "Log out everywhere on Redis, one user's {USER_SESSIONS} sessions among {}: list and delete all under 1 ms: {} \
         (medians: list {}, delete all {}; `index_report`).",
        figures.sessions,
        if met { "**met**" } else { "**not met**" },
        time(list),
        time(delete)
    ))
}

fn render(options: &Options, all: &[Figures], took: Duration) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "## Log out everywhere: one user's sessions among many\n");
    let mut command = "cargo run -p session-benches --release --bin index_report".to_owned();
    if !options.args.is_empty() {
        let _ = write!(command, " -- {}", options.args.join(" "));
    }
    let _ = write!(
        w,
        "Generated by `{command}` on {} in {:.0} s.",
        today(),
        took.as_secs_f64()
    );
    if all.is_empty() {
        let _ = writeln!(w);
        return w;
    }
    let _ = writeln!(
        w,
        " One user has {USER_SESSIONS} sessions among all the \
         others (every other user has {USER_SESSIONS} too); each session is the benchmark session above plus \
         `#[session(index)] user: Option<String>` and a recorded User-Agent, as the HTTP layer stores it. \
         The index operations are each timed {} times, one call a sample, the {USER_SESSIONS} sessions stored again \
         (untimed) before every deletion; `delete_where` with a predicate on the user, which reads every session, \
         {} time(s) per store. Medians, with the 10th and 90th percentiles: the machine's 2 cores are shared with \
         other builds, which shows in the spread and more between runs: on Redis each operation is a few round \
         trips over loopback to another process, whose cost on this shared virtual machine moved by up to 4× \
         between runs of the same code, so the first row gives the bare \
         round trip of the same run, and the machine's 1-minute load average is given below with each store.\n",
        options.samples, options.scan_samples
    );
    let mut header = "| Operation |".to_owned();
    let mut rule = "|---|".to_owned();
    for figures in all {
        let _ = write!(header, " {}, {} sessions |", figures.store.name(), figures.sessions);
        rule.push_str("---:|");
    }
    let _ = writeln!(w, "{header}\n{rule}");
    for (label, samples) in rows(all) {
        let mut line = format!("| {label} |");
        for samples in samples {
            let _ = write!(
                line,
                " {} ({}–{}) |",
                time(samples.median()),
                time(samples.quantile(0.1)),
                time(samples.quantile(0.9))
            );
        }
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w);
    for figures in all {
        let rate = figures.sessions as f64 / figures.fill.as_secs_f64();
        let how = match figures.store {
            Store::Memory => format!("`SessionProvider::save` from {} tasks", figures.fill_tasks),
            Store::Redis => format!(
                "`SessionProvider::save` from {} concurrent tasks over the store's one multiplexed connection \
                 (pipelined; one script per save)",
                figures.fill_tasks
            ),
            Store::Cluster => format!(
                "`SessionProvider::save` from {} concurrent tasks over the store's cluster connection \
                 (pipelined per node; a new session joins its index, in the index's own slot, before its write)",
                figures.fill_tasks
            ),
        };
        let _ = writeln!(
            w,
            "- {}: filled in {:.1} s ({rate:.0} sessions/s) through {how}; {}. Load average {:.1} before, {:.1} after.",
            figures.store.name(),
            figures.fill.as_secs_f64(),
            figures.memory,
            figures.load.0,
            figures.load.1
        );
    }
    if let Some(redis) = all.iter().find(|figures| figures.store == Store::Redis) {
        let (met, list, delete) = redis_verdict(redis);
        let _ = writeln!(
            w,
            "\nTarget: list and delete all of one user's sessions under 1 ms on Redis: {} (the slower of each pair: \
             list {}, delete all {}).",
            if met { "**met**" } else { "**not met**" },
            time(list),
            time(delete)
        );
    }
    w
}

const BEGIN: &str = "<!-- index:begin -->";
const END: &str = "<!-- index:end -->";
const BUDGET_PREFIX: &str = "- Log out everywhere on Redis";

/// Replaces the section of BENCHMARKS.md (or adds it before "How to reproduce") and the
/// budget line (or adds it at the end of the budgets).
fn write_section(section: &str, budget: Option<&str>) -> Result<(), BoxError> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "BENCHMARKS.md"].iter().collect();
    let mut text = std::fs::read_to_string(&path)?;
    let block = format!("{BEGIN}\n{section}{END}\n");
    text = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) => {
            let end = end + END.len() + 1;
            format!("{}{block}{}", &text[..begin], &text[end.min(text.len())..])
        }
        _ => match text.find("## How to reproduce") {
            Some(at) => format!("{}{block}\n{}", &text[..at], &text[at..]),
            None => format!("{text}\n{block}"),
        },
    };
    if let Some(budget) = budget {
        text = with_budget(&text, budget);
    }
    std::fs::write(&path, text)?;
    eprintln!("wrote the index section of {}", path.display());
    print!("{section}");
    Ok(())
}

/// `text` with `budget` as the last line of the "Budgets" list, replacing an earlier one.
fn with_budget(text: &str, budget: &str) -> String {
    let Some(start) = text.find("## Budgets\n\n").map(|at| at + "## Budgets\n\n".len()) else {
        return text.to_owned();
    };
    let end = text[start..].find("\n\n").map_or(text.len(), |at| start + at + 1);
    let mut lines: Vec<&str> = text[start..end]
        .lines()
        .filter(|line| !line.starts_with(BUDGET_PREFIX))
        .collect();
    let line = format!("- {budget}");
    lines.push(&line);
    format!("{}{}\n{}", &text[..start], lines.join("\n"), &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_line_replaces_its_predecessor_at_the_end_of_the_budgets() {
        let text = "# B\n\n## Budgets\n\n- one: **met**.\n- Log out everywhere on Redis, old.\n- two.\n\n## Micro\n";
        let updated = with_budget(text, "Log out everywhere on Redis, new.");
        assert_eq!(
            updated,
            "# B\n\n## Budgets\n\n- one: **met**.\n- two.\n- Log out everywhere on Redis, new.\n\n## Micro\n"
        );
        assert_eq!(with_budget(&updated, "Log out everywhere on Redis, new."), updated);
        assert_eq!(with_budget("no budgets\n", "x"), "no budgets\n");
    }

    #[test]
    fn quick_run_on_the_memory_store() {
        let options = Options {
            sessions: 2_000,
            samples: 5,
            scan_samples: 1,
            cluster_sessions: 0,
            runs: 1,
            secs: 0.5,
            only: Some("memory".to_owned()),
            quick: true,
            args: vec!["--quick".to_owned()],
        };
        let figures = runtime().unwrap().block_on(memory(&options, 2_000)).unwrap();
        let section = render(&options, &[figures], Duration::from_secs(1));
        assert!(section.contains("| list: `sessions_of_index` |"), "{section}");
        assert!(section.contains("--bin index_report -- --quick"), "{section}");
        assert!(!section.contains("Target:"), "no Redis, no verdict: {section}");
    }
}
