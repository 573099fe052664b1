//! Runs every benchmark and writes `BENCHMARKS.md` at the repository root.
//!
//! ```text
//! cargo run -p session-benches --release --bin report             # everything (~6 minutes once built)
//! cargo run -p session-benches --release --bin report -- --quick  # a fast smoke run
//! ```
//!
//! Options: `--runs N` (end-to-end runs per app and request kind, default 5), `--secs S`
//! (seconds per run, default 3), `--sessions N` (memory fill, default 1,000,000),
//! `--no-micro` (skip criterion and reuse its last results), `--out PATH`.
//! Subcommands used internally, each in a fresh process: `serve APP [REDIS_URL]`,
//! `memory ours|tower COUNT`; and for profiling a server started with `serve`:
//! `load ADDR PATH SECS`.
//!
//! `compare PATH APP[=REPORT] … [--runs N] [--secs S]` measures the apps alone, their runs
//! interleaved, each against a private Redis of its own, and prints for each run and the median: req/s,
//! the app's CPU per request and, for a Redis app, Redis's CPU, bytes and commands per
//! request. `APP=REPORT` serves the app from another build of this binary, to compare a
//! change with the build before it:
//!
//! ```text
//! cp target/release/report /tmp/report-before    # then change the code and rebuild
//! target/release/report compare /rmw session-redis=/tmp/report-before session-redis
//! ```
//!
//! `instructions PATH APP[=REPORT] … [--secs S]` serves each app under valgrind's
//! callgrind and prints the instructions its process runs per request over one phase of
//! PATH (after a warm-up phase): user space only, and the same from run to run whatever
//! else the machine is doing, so it shows a change too small for the noise of req/s.
//! Valgrind emulates the CPU without its SHA extensions, so SHA-256 (store keys, HMAC)
//! counts several times what it costs natively.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use session_benches::{
    apps::{self, App, BoxError},
    child::{ChildServer, runtime, serve_axum, stdin_closed},
    clustered,
    load::{Clients, Load, Outcome, median},
    memory::{self, Filled, Footprint},
    ops::{ActixStoreOps, OursStore, TowerStoreOps},
    stores,
};
use session_test_support::{RedisServer, Traffic};

const KINDS: [(&str, &str); 2] = [("read", "/read"), ("rmw", "/rmw")];
/// Operations per library in the Redis wire count.
const WIRE_OPS: u64 = 1000;

struct Options {
    runs: usize,
    secs: f64,
    sessions: u64,
    micro: bool,
    quick: bool,
    out: PathBuf,
}

/// This executable's path, read at start-up: `cargo bench` rebuilds (replaces) it while
/// the report runs, after which the running process's own path reads as deleted.
static SELF_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn self_path() -> Result<PathBuf, BoxError> {
    match SELF_PATH.get() {
        Some(path) => Ok(path.clone()),
        None => Ok(std::env::current_exe()?),
    }
}

fn main() -> Result<(), BoxError> {
    if let Ok(path) = std::env::current_exe() {
        let _ = SELF_PATH.set(path);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("memory") => memory_child(&args[1..]),
        Some("flood") => flood_child(),
        Some("load") => load_only(&args[1..]),
        Some("compare") => compare(&args[1..]),
        Some("instructions") => instructions(&args[1..]),
        _ => report(parse_options(&args)?),
    }
}

fn parse_options(args: &[String]) -> Result<Options, BoxError> {
    let root = repo_root();
    let mut options = Options {
        runs: 5,
        secs: 3.0,
        sessions: 1_000_000,
        micro: true,
        quick: false,
        out: root.join("BENCHMARKS.md"),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => options.runs = value()?.parse()?,
            "--secs" => options.secs = value()?.parse()?,
            "--sessions" => options.sessions = value()?.parse()?,
            "--out" => options.out = value()?.into(),
            "--no-micro" => options.micro = false,
            "--quick" => {
                options.quick = true;
                options.runs = 1;
                options.secs = 1.0;
                options.sessions = 100_000;
            }
            other => return Err(format!("unknown option {other}; see the top of benches/src/bin/report.rs").into()),
        }
    }
    Ok(options)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is in the repository")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

// ---- Child processes -------------------------------------------------------------------

/// `serve APP [REDIS_URL]`: serves the app on a free loopback port, prints
/// `listening ADDR`, and stops when its standard input closes.
fn serve(args: &[String]) -> Result<(), BoxError> {
    let app: App = args.first().ok_or("serve needs an app")?.parse()?;
    let redis_url = args.get(1).map(String::as_str);
    if app.is_actix() {
        return runtime()?.block_on(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("listening {}", listener.local_addr()?);
            let server = apps::serve_actix(app, redis_url, listener).await?;
            let handle = server.handle();
            tokio::spawn(async move {
                stdin_closed().await;
                handle.stop(true).await;
            });
            server.await?;
            Ok(())
        });
    }
    runtime()?.block_on(async move { serve_axum(apps::router(app, redis_url).await?).await })
}

/// `memory ours|tower COUNT`: prints `SESSIONS BYTES`.
fn memory_child(args: &[String]) -> Result<(), BoxError> {
    let which = match args.first().map(String::as_str) {
        Some("ours") => Filled::Ours,
        Some("tower") => Filled::Tower,
        _ => return Err("memory needs ours or tower".into()),
    };
    let count: u64 = args.get(1).ok_or("memory needs a count")?.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let footprint = runtime.block_on(memory::fill(which, count))?;
    println!("{} {}", footprint.sessions, footprint.bytes);
    Ok(())
}

/// `flood`: prints the rows of the flood table.
fn flood_child() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for row in runtime.block_on(session_benches::flood::flood())? {
        println!("{row}");
    }
    Ok(())
}

/// `load ADDR PATH SECS`: one measured phase against a running server, e.g. one under a
/// profiler.
fn load_only(args: &[String]) -> Result<(), BoxError> {
    let [addr, path, secs] = args else {
        return Err("load needs ADDR PATH SECS".into());
    };
    let path: &'static str = String::leak(path.clone());
    let load = phase_load(32, secs.parse()?);
    runtime()?.block_on(async {
        let mut clients = Clients::connect(addr.parse()?, load, "/init").await?;
        let outcome = clients.run(path).await?;
        println!(
            "{:.0} req/s  p50 {:.0} us  p99 {:.0} us  errors {}",
            outcome.per_second(),
            outcome.p50_us,
            outcome.p99_us,
            outcome.errors
        );
        Ok(())
    })
}

/// A phase of `secs` seconds over `connections` keep-alive connections of 8 users each,
/// as `load`, `compare` and `instructions` run it.
fn phase_load(connections: usize, secs: f64) -> Load {
    Load {
        connections,
        users_per_connection: 8,
        duration: Duration::from_secs_f64(secs),
        max_requests_per_connection: 10_000_000,
    }
}

/// What `compare` was asked for.
#[derive(Debug, PartialEq)]
struct Comparison {
    path: &'static str,
    runs: usize,
    secs: f64,
    /// Each app's label (as given), the app, and the build to serve it from (this one if
    /// `None`).
    apps: Vec<(String, App, Option<PathBuf>)>,
}

fn parse_comparison(args: &[String]) -> Result<Comparison, BoxError> {
    let mut comparison = Comparison {
        path: "",
        runs: 3,
        secs: 4.0,
        apps: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => comparison.runs = value()?.parse()?,
            "--secs" => comparison.secs = value()?.parse()?,
            _ if comparison.path.is_empty() => comparison.path = String::leak(arg.clone()),
            _ => {
                let (name, exe) = match arg.split_once('=') {
                    Some((name, exe)) => (name, Some(PathBuf::from(exe))),
                    None => (arg.as_str(), None),
                };
                comparison.apps.push((arg.clone(), name.parse()?, exe));
            }
        }
    }
    if !comparison.path.starts_with('/') || comparison.apps.is_empty() {
        return Err("compare needs PATH (/read or /rmw) and at least one app".into());
    }
    Ok(comparison)
}

/// `compare PATH APP[=REPORT] … [--runs N] [--secs S]` (see the top of this file).
fn compare(args: &[String]) -> Result<(), BoxError> {
    let Comparison { path, runs, secs, apps } = parse_comparison(args)?;
    let load = phase_load(32, secs);
    let runtime = runtime()?;
    let mut servers = Vec::new();
    for (label, app, exe) in apps {
        let exe = exe.map_or_else(self_path, Ok)?;
        // A Redis of its own: two builds of one clustered app share a key prefix, and each
        // would hear (and pay for) the other's invalidations; Redis's CPU is then its alone.
        let redis = app.uses_redis().then(RedisServer::start);
        let server = start_server_from(&exe, app, redis.as_ref().map(RedisServer::url).as_deref())?;
        // Each user starts with `/init`, so every phase finds its sessions stored.
        let clients = runtime.block_on(Clients::connect(server.addr, load, "/init"))?;
        servers.push((label, server, clients, redis));
    }
    let mut measured: BTreeMap<String, Vec<Measured>> = BTreeMap::new();
    for run in 1..=runs {
        for (label, server, clients, redis) in &mut servers {
            let phase = measure_phase(&runtime, server, clients, path, redis.as_ref())?;
            println!("run {run} {label}: {}", describe(&phase));
            measured.entry(label.clone()).or_default().push(phase);
        }
    }
    for (label, phases) in &measured {
        let mut line = format!(
            "median {label}: {:.0} req/s",
            median_over(phases, |phase| Some(phase.outcome.per_second())).unwrap_or_default()
        );
        if let Some(cpu) = median_over(phases, |phase| phase.app_cpu_us) {
            let _ = write!(line, ", app CPU {cpu:.1} µs");
        }
        let per = |counter: fn(&Traffic) -> u64| median_over(phases, |phase| per_request(phase, counter));
        if let (Some(cpu), Some(bytes_in), Some(bytes_out), Some(calls)) = (
            per(|traffic| traffic.cpu_us),
            per(|traffic| traffic.bytes_in),
            per(|traffic| traffic.bytes_out),
            per(Traffic::total_calls),
        ) {
            let _ = write!(
                line,
                ", Redis CPU {cpu:.1} µs, {bytes_in:.0} B to / {bytes_out:.0} B from Redis, {calls:.2} commands"
            );
        }
        println!("{line} per request");
    }
    Ok(())
}

/// `instructions PATH APP[=REPORT] … [--secs S]` (see the top of this file).
fn instructions(args: &[String]) -> Result<(), BoxError> {
    let Comparison { path, secs, apps, .. } = parse_comparison(args)?;
    // Under callgrind an app serves about fifty times fewer requests: fewer connections.
    let load = phase_load(8, secs);
    let runtime = runtime()?;
    let dir = std::env::temp_dir().join(format!("session-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (n, (label, app, exe)) in apps.into_iter().enumerate() {
        let exe = exe.map_or_else(self_path, Ok)?;
        let redis = app.uses_redis().then(RedisServer::start);
        let out = dir.join(format!("callgrind.{n}"));
        let mut command = Command::new("valgrind");
        command
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .stderr(Stdio::null());
        let url = redis.as_ref().map(RedisServer::url);
        let server = spawn_server(command, app, url.as_deref(), "valgrind (is it installed?)")?;
        let mut clients = runtime.block_on(Clients::connect(server.addr, load, "/init"))?;
        runtime.block_on(clients.run(path))?;
        callgrind_control(&["-z"], server.id())?;
        let outcome = runtime.block_on(clients.run(path))?;
        callgrind_control(&["-d"], server.id())?;
        all_answered(&outcome, path).map_err(|error| format!("{label}: {error}"))?;
        // The dump after zeroing is the first numbered part.
        let dump = std::fs::read_to_string(dir.join(format!("callgrind.{n}.1")))?;
        let total = callgrind_total(&dump).ok_or("no total in callgrind's dump")?;
        println!(
            "{label}: {:.0} instructions per request ({} requests)",
            total as f64 / outcome.requests.max(1) as f64,
            outcome.requests
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs `callgrind_control` with `args` on the process `pid`.
fn callgrind_control(args: &[&str], pid: u32) -> Result<(), BoxError> {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("callgrind_control {args:?} {pid} failed").into());
    }
    Ok(())
}

/// The instruction count of a callgrind dump (its `summary:` line).
fn callgrind_total(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|line| line.strip_prefix("summary:")?.trim().parse().ok())
}

/// One phase's figures on a line.
fn describe(phase: &Measured) -> String {
    let requests = phase.outcome.requests.max(1);
    let mut line = format!("{:.0} req/s", phase.outcome.per_second());
    if let Some(cpu) = phase.app_cpu_us {
        let _ = write!(line, ", app CPU {cpu:.1} µs");
    }
    if let Some(traffic) = &phase.traffic {
        let per = |value: u64| value as f64 / requests as f64;
        let _ = write!(
            line,
            ", Redis CPU {:.1} µs, {:.0} B to / {:.0} B from Redis, {}",
            per(traffic.cpu_us),
            per(traffic.bytes_in),
            per(traffic.bytes_out),
            traffic.describe_per(requests)
        );
    }
    line + " per request"
}

/// Runs one measured phase of `path` against `server`: its outcome, the app's CPU per
/// request and, with `redis`, Redis's traffic over it.
fn measure_phase(
    runtime: &tokio::runtime::Runtime,
    server: &ChildServer,
    clients: &mut Clients,
    path: &'static str,
    redis: Option<&RedisServer>,
) -> Result<Measured, BoxError> {
    let before = redis.map(RedisServer::counters).transpose()?;
    let cpu_before = server.cpu_time();
    let outcome = runtime.block_on(clients.run(path))?;
    let app_cpu_us = match (cpu_before, server.cpu_time()) {
        (Some(before), Some(after)) => Some((after - before).as_secs_f64() * 1e6 / outcome.requests.max(1) as f64),
        _ => None,
    };
    let traffic = match (before, redis) {
        (Some(before), Some(redis)) => Some(Traffic::between(&before, &redis.counters()?)),
        _ => None,
    };
    all_answered(&outcome, path)?;
    Ok(Measured {
        outcome,
        traffic,
        app_cpu_us,
    })
}

/// An error naming one failure when some of a phase's requests of `path` failed.
fn all_answered(outcome: &Outcome, path: &str) -> Result<(), BoxError> {
    if outcome.errors > 0 {
        return Err(format!(
            "{path}: {} failed requests, one of them {}",
            outcome.errors,
            outcome.a_failure.clone().unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

/// Serves `app` from a child process of this binary.
fn start_server(app: App, redis_url: Option<&str>) -> Result<ChildServer, BoxError> {
    start_server_from(&self_path()?, app, redis_url)
}

/// Serves `app` from a child process of `exe`, a build of this binary.
fn start_server_from(exe: &Path, app: App, redis_url: Option<&str>) -> Result<ChildServer, BoxError> {
    spawn_server(Command::new(exe), app, redis_url, app.name())
}

/// Spawns `command` (a build of this binary, or a tool that runs one) with `serve APP
/// [REDIS_URL]`; `what` names it in errors.
fn spawn_server(mut command: Command, app: App, redis_url: Option<&str>, what: &str) -> Result<ChildServer, BoxError> {
    command.arg("serve").arg(app.name());
    if let Some(url) = redis_url {
        command.arg(url);
    }
    ChildServer::spawn(command, what)
}

// ---- The report ------------------------------------------------------------------------

fn report(options: Options) -> Result<(), BoxError> {
    let started = Instant::now();
    let micro = if options.micro {
        eprintln!("== micro benchmarks (criterion)");
        run_criterion(options.quick)?
    } else {
        read_criterion()
    };
    eprintln!("== Redis wire counts");
    let redis = RedisServer::try_start()?;
    let wire = runtime()?.block_on(wire_counts(&redis))?;
    eprintln!("== clustered store, one node and two");
    let clustered = runtime()?.block_on(clustered::measure(&redis))?;
    eprintln!("== end to end");
    let e2e = end_to_end(&options, &redis)?;
    eprintln!("== memory, {} sessions", options.sessions);
    let mut footprints = BTreeMap::new();
    for (name, which) in [("session", "ours"), ("tower-sessions", "tower")] {
        footprints.insert(name, memory_in_child(which, options.sessions)?);
    }
    eprintln!("== flood");
    let flood = std::process::Command::new(self_path()?).arg("flood").output()?;
    if !flood.status.success() {
        return Err(format!("the flood child failed: {}", String::from_utf8_lossy(&flood.stderr)).into());
    }
    let flood = String::from_utf8_lossy(&flood.stdout).into_owned();
    let measured = Report {
        micro,
        wire,
        clustered,
        e2e,
        footprints,
        flood,
    };
    let text = render(&options, &measured, started.elapsed());
    std::fs::write(&options.out, keep_other_sections(&options.out, text))?;
    eprintln!("wrote {} in {:.0?}", options.out.display(), started.elapsed());
    Ok(())
}

/// `text` with the sections that `sql_report` and `index_report` wrote into the previous
/// file (between their markers) put back before "How to reproduce", and `index_report`'s
/// budget line at the end of the budgets: the reports share the file.
fn keep_other_sections(path: &Path, mut text: String) -> String {
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    for name in ["sql", "index"] {
        let (begin, end) = (format!("<!-- {name}:begin -->"), format!("<!-- {name}:end -->\n"));
        let (Some(from), Some(to)) = (previous.find(&begin), previous.find(&end)) else {
            continue;
        };
        let block = &previous[from..to + end.len()];
        text = match text.find("## How to reproduce") {
            Some(at) => format!("{}{block}\n{}", &text[..at], &text[at..]),
            None => format!("{text}\n{block}"),
        };
    }
    let budget = previous.lines().find(|line| line.starts_with(INDEX_BUDGET_PREFIX));
    match (budget, text.find("\n## Micro benchmarks")) {
        (Some(line), Some(at)) => format!("{}{line}\n{}", &text[..at], &text[at..]),
        _ => text,
    }
}

/// How `index_report`'s line in the budgets begins.
const INDEX_BUDGET_PREFIX: &str = "- Log out everywhere on Redis";

/// The criterion benchmarks the report reads: (group, [ids, this crate first]).
const MICRO: [(&str, &str, &[&str]); 4] = [
    (
        "codec",
        "encode + decode",
        &["session", "tower-sessions", "actix-session"],
    ),
    (
        "cookie",
        "cookie seal + open",
        &["session", "actix-session", "axum-extra"],
    ),
    ("memory", "memory store load + save", &["session", "tower-sessions"]),
    (
        "redis",
        "Redis store load + save",
        &["session", "tower-sessions", "actix-session"],
    ),
];

/// Medians in nanoseconds by (group, id).
type Micro = BTreeMap<(String, String), f64>;

fn criterion_home() -> PathBuf {
    target_dir().join("criterion")
}

fn run_criterion(quick: bool) -> Result<Micro, BoxError> {
    let home = criterion_home();
    for (group, _, _) in MICRO {
        // Stale results of a bench that no longer runs must not be reported.
        let _ = std::fs::remove_dir_all(home.join(group));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["bench", "-p", "session-benches", "--bench", "micro", "-j1", "--"])
        .env("CRITERION_HOME", &home)
        .env("CARGO_TARGET_DIR", target_dir());
    if quick {
        command.args([
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
            "--sample-size",
            "10",
        ]);
    }
    let status = command.status()?;
    if !status.success() {
        return Err(format!("cargo bench failed: {status}").into());
    }
    Ok(read_criterion())
}

fn read_criterion() -> Micro {
    let mut medians = Micro::new();
    for (group, _, ids) in MICRO {
        for id in ids {
            let path = criterion_home().join(group).join(id).join("new/estimates.json");
            let median = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|json| json["median"]["point_estimate"].as_f64());
            match median {
                Some(ns) => {
                    medians.insert((group.to_owned(), (*id).to_owned()), ns);
                }
                None => eprintln!("no criterion result at {}", path.display()),
            }
        }
    }
    medians
}

/// Per-operation Redis traffic of one library: (load, save) each averaged over
/// [`WIRE_OPS`] operations.
struct Wire {
    load: Traffic,
    save: Traffic,
    /// Commands the client sent (round trips when nothing is pipelined), by name.
    load_sent: BTreeMap<String, u64>,
    save_sent: BTreeMap<String, u64>,
}

async fn wire_counts(redis: &RedisServer) -> Result<BTreeMap<&'static str, Wire>, BoxError> {
    // Each block: WIRE_OPS operations under MONITOR for the commands sent, then
    // WIRE_OPS more between two snapshots of the counters for the traffic.
    macro_rules! traffic {
        ($op:expr) => {{
            let monitor = redis.monitor()?;
            for _ in 0..WIRE_OPS {
                $op;
            }
            let sent = monitor.client_commands(redis)?;
            let before = redis.counters()?;
            for _ in 0..WIRE_OPS {
                $op;
            }
            (Traffic::between(&before, &redis.counters()?), sent)
        }};
    }
    let url = redis.url();
    let mut wire = BTreeMap::new();
    match stores::ours_redis(&url).await {
        Ok(store) => {
            let ours = OursStore::new(store).await?;
            let mut session = ours.loaded().await?;
            let (load, load_sent) = traffic!(ours.load().await?);
            let (save, save_sent) = traffic!(ours.save(&mut session).await?);
            wire.insert(
                "session",
                Wire {
                    load,
                    save,
                    load_sent,
                    save_sent,
                },
            );
        }
        Err(error) => eprintln!("session Redis store unavailable: {error}"),
    }
    let tower = TowerStoreOps::new(stores::tower_redis(&url).await?).await?;
    let mut record = tower.load().await?;
    let (load, load_sent) = traffic!(tower.load().await?);
    let (save, save_sent) = traffic!(tower.save(&mut record).await?);
    wire.insert(
        "tower-sessions",
        Wire {
            load,
            save,
            load_sent,
            save_sent,
        },
    );
    let actix = ActixStoreOps::new(stores::actix_redis(&url).await?).await?;
    let state = actix.load().await?;
    let (load, load_sent) = traffic!(actix.load().await?);
    let (save, save_sent) = traffic!(actix.save(state.clone()).await?);
    wire.insert(
        "actix-session",
        Wire {
            load,
            save,
            load_sent,
            save_sent,
        },
    );
    Ok(wire)
}

/// One measured phase of one app.
struct Measured {
    outcome: Outcome,
    traffic: Option<Traffic>,
    /// The app's CPU time over the run, in µs per request.
    app_cpu_us: Option<f64>,
}

type E2e = BTreeMap<(App, &'static str), Vec<Measured>>;

fn end_to_end(options: &Options, redis: &RedisServer) -> Result<E2e, BoxError> {
    let load = Load {
        connections: 32,
        users_per_connection: 8,
        duration: Duration::from_secs_f64(options.secs),
        max_requests_per_connection: 1_000_000,
    };
    let runtime = runtime()?;
    let url = redis.url();
    // Every app is up at once and the runs interleave, so a burst of noise from the
    // shared machine hits every app alike rather than one.
    let mut servers = Vec::new();
    for app in App::ALL {
        let server = match start_server(app, app.uses_redis().then_some(url.as_str())) {
            Ok(server) => server,
            Err(error) => {
                eprintln!("{app}: not measured: {error}");
                continue;
            }
        };
        let clients = runtime.block_on(Clients::connect(server.addr, load, "/init"))?;
        servers.push((app, server, clients));
    }
    let mut results = E2e::new();
    for run in 0..options.runs {
        for (app, server, clients) in &mut servers {
            for (kind, path) in KINDS {
                let measured = measure_phase(&runtime, server, clients, path, app.uses_redis().then_some(redis))
                    .map_err(|error| format!("{app} {kind}: {error}"))?;
                let outcome = &measured.outcome;
                eprintln!(
                    "run {} {app:>22} {kind:>4}: {:>8.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  errors {}",
                    run + 1,
                    outcome.per_second(),
                    outcome.p50_us,
                    outcome.p99_us,
                    outcome.errors
                );
                results.entry((*app, kind)).or_default().push(measured);
            }
        }
    }
    Ok(results)
}

fn memory_in_child(which: &str, count: u64) -> Result<Footprint, BoxError> {
    let output = Command::new(self_path()?)
        .args(["memory", which, &count.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("memory {which} failed: {}", output.status).into());
    }
    let text = String::from_utf8(output.stdout)?;
    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(sessions)), Some(Ok(bytes))) => Ok(Footprint { sessions, bytes }),
        _ => Err(format!("memory {which} printed {text:?}").into()),
    }
}

// ---- Rendering -------------------------------------------------------------------------

/// Median requests/s, p50 and p99 of an app's runs of one kind.
fn e2e_medians(e2e: &E2e, app: App, kind: &str) -> Option<(f64, f64, f64)> {
    let runs = e2e.get(&(app, kind))?;
    let pick = |f: fn(&Outcome) -> f64| median(runs.iter().map(|run| f(&run.outcome)).collect());
    Some((pick(Outcome::per_second), pick(|o| o.p50_us), pick(|o| o.p99_us)))
}

/// The median of what `of` reads from each of an app's runs of one kind (runs it reads
/// nothing from left out); `None` if it reads nothing.
fn run_median(e2e: &E2e, app: App, kind: &str, of: impl Fn(&Measured) -> Option<f64>) -> Option<f64> {
    median_over(e2e.get(&(app, kind))?, of)
}

/// The median of what `of` reads from each of `runs` (runs it reads nothing from left
/// out); `None` if it reads nothing.
fn median_over(runs: &[Measured], of: impl Fn(&Measured) -> Option<f64>) -> Option<f64> {
    let samples: Vec<f64> = runs.iter().filter_map(of).collect();
    (!samples.is_empty()).then(|| median(samples))
}

/// What `counter` reads from a run's Redis traffic, per request.
fn per_request(run: &Measured, counter: impl Fn(&Traffic) -> u64) -> Option<f64> {
    Some(counter(run.traffic.as_ref()?) as f64 / run.outcome.requests.max(1) as f64)
}

/// Median app CPU per request (µs) of an app's runs of one kind, where it was read.
fn e2e_app_cpu(e2e: &E2e, app: App, kind: &str) -> Option<f64> {
    run_median(e2e, app, kind, |run| run.app_cpu_us)
}

/// Median per request of one Redis traffic counter over an app's runs of one kind.
fn traffic_per_request(e2e: &E2e, app: App, kind: &str, counter: impl Fn(&Traffic) -> u64) -> Option<f64> {
    run_median(e2e, app, kind, |run| per_request(run, &counter))
}

/// Median Redis CPU per request (µs) of an app's runs of one kind.
fn e2e_redis_cpu(e2e: &E2e, app: App, kind: &str) -> Option<f64> {
    traffic_per_request(e2e, app, kind, |traffic| traffic.cpu_us)
}

/// The median over runs of `ours`'s requests/s divided by `peer`'s in the same run: the
/// runs interleave the apps, so each pair was measured seconds apart, which keeps a burst
/// of load from the shared machine out of the ratio better than a ratio of medians.
fn e2e_ratio(e2e: &E2e, ours: App, peer: App, kind: &str) -> Option<f64> {
    let (ours, peer) = (e2e.get(&(ours, kind))?, e2e.get(&(peer, kind))?);
    let ratios: Vec<f64> = ours
        .iter()
        .zip(peer)
        .map(|(o, p)| o.outcome.per_second() / p.outcome.per_second())
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// Median per-request Redis commands, bytes in and bytes out.
fn e2e_traffic(e2e: &E2e, app: App, kind: &str) -> Option<(f64, f64, f64, String)> {
    let last = e2e.get(&(app, kind))?.last()?;
    let describe = last.traffic.as_ref()?.describe_per(last.outcome.requests);
    let per = |counter: fn(&Traffic) -> u64| traffic_per_request(e2e, app, kind, counter);
    Some((
        per(Traffic::total_calls)?,
        per(|traffic| traffic.bytes_in)?,
        per(|traffic| traffic.bytes_out)?,
        describe,
    ))
}

fn time(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, model)| model.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB of memory", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{model}, {cores} cores{memory}, Linux")
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown date".to_owned(), |text| text.trim().to_owned())
}

/// Everything one report run measured.
struct Report {
    micro: Micro,
    wire: BTreeMap<&'static str, Wire>,
    clustered: clustered::Figures,
    e2e: E2e,
    footprints: BTreeMap<&'static str, Footprint>,
    /// The flood table's rows.
    flood: String,
}

fn render(options: &Options, measured: &Report, took: Duration) -> String {
    let Report {
        micro,
        wire,
        clustered,
        e2e,
        footprints,
        flood,
    } = measured;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `cargo run -p session-benches --release --bin report{}` on {}, in {:.0} s.\n",
        if options.quick { " -- --quick" } else { "" },
        today(),
        took.as_secs_f64()
    );
    let _ = writeln!(
        w,
        "Machine: {}. The machine is shared with other builds, so only figures of one run are compared; every figure is a median.\n",
        machine()
    );
    let _ = writeln!(
        w,
        "Every library holds the same session: a user id (u64), a user name, a visit counter and eight short preference strings \
         (theme, language, timezone, currency, font_size, density, sidebar, notifications), in its own idiom \
         (typed fields here; JSON values in tower-sessions and actix-session; a JSON string in the axum-extra private cookie).\n"
    );

    // ---- Summary
    let _ = writeln!(w, "## Summary: this crate ÷ each peer\n");
    let _ = writeln!(
        w,
        "Ratio: above 1 means this crate does better. For times, bytes and memory it is the peer's figure ÷ ours; for \
         requests/s, ours ÷ the peer's, taken as the median over the runs of the ratio within each run (the runs interleave \
         the apps, so the two figures of a pair were measured seconds apart); the req/s columns are the medians of the runs.\n"
    );
    let _ = writeln!(w, "| Measure | Peer | This crate | Peer | Ratio |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|");
    for (group, title, ids) in MICRO {
        let ours = micro.get(&(group.to_owned(), "session".to_owned()));
        for peer in &ids[1..] {
            let theirs = micro.get(&(group.to_owned(), (*peer).to_owned()));
            let (ours_text, theirs_text, ratio) = match (ours, theirs) {
                (Some(o), Some(t)) => (time(*o), time(*t), format!("{:.2}×", t / o)),
                (o, t) => (
                    o.map_or("—".into(), |o| time(*o)),
                    t.map_or("—".into(), |t| time(*t)),
                    "—".into(),
                ),
            };
            let _ = writeln!(w, "| {title} | {peer} | {ours_text} | {theirs_text} | {ratio} |");
        }
    }
    let pairs = [
        (App::OursMemory, App::TowerMemory, "tower-sessions (memory)"),
        (App::OursRedis, App::TowerRedis, "tower-sessions (Redis)"),
        (
            App::OursClustered,
            App::TowerRedis,
            "tower-sessions (Redis; ours: clustered, one node)",
        ),
        (
            App::OursClusteredTwo,
            App::TowerRedis,
            "tower-sessions (Redis; ours: clustered, two nodes)",
        ),
        (
            App::OursClustered,
            App::OursMemory,
            "our memory store (ours: clustered, one node)",
        ),
        (
            App::OursClusteredTwo,
            App::OursMemory,
            "our memory store (ours: clustered, two nodes)",
        ),
        (
            App::OursActixCookie,
            App::ActixCookie,
            "actix-session (cookie, actix-web)",
        ),
        (App::OursActixRedis, App::ActixRedis, "actix-session (Redis, actix-web)"),
        (App::OursMemory, App::NoSession, "no session (ours: memory)"),
        (App::OursCookie, App::NoSession, "no session (ours: cookie)"),
        (App::OursRedis, App::NoSession, "no session (ours: Redis)"),
    ];
    for (kind, label) in [("rmw", "e2e read-modify-write"), ("read", "e2e read-only")] {
        for (ours, peer, peer_label) in pairs {
            let (Some((o, _, _)), Some((t, _, _)), Some(ratio)) = (
                e2e_medians(e2e, ours, kind),
                e2e_medians(e2e, peer, kind),
                e2e_ratio(e2e, ours, peer, kind),
            ) else {
                continue;
            };
            let _ = writeln!(w, "| {label}, req/s | {peer_label} | {o:.0} | {t:.0} | {ratio:.2}× |");
        }
    }
    if let (Some(o), Some(t)) = (footprints.get("session"), footprints.get("tower-sessions")) {
        let _ = writeln!(
            w,
            "| memory per live session | tower-sessions | {:.0} B | {:.0} B | {:.2}× |",
            o.per_session(),
            t.per_session(),
            t.per_session() / o.per_session()
        );
    }
    if let Some(ours) = wire.get("session") {
        for peer in ["tower-sessions", "actix-session"] {
            if let Some(theirs) = wire.get(peer) {
                let bytes = |x: &Wire| {
                    (x.load.bytes_in + x.load.bytes_out + x.save.bytes_in + x.save.bytes_out) as f64 / WIRE_OPS as f64
                };
                let _ = writeln!(
                    w,
                    "| Redis bytes per load + save | {peer} | {:.0} B | {:.0} B | {:.2}× |",
                    bytes(ours),
                    bytes(theirs),
                    bytes(theirs) / bytes(ours)
                );
            }
        }
    }

    // ---- Budgets
    let _ = writeln!(w, "\n## Budgets\n");
    for line in budgets(micro, wire, e2e, footprints) {
        let _ = writeln!(w, "- {line}");
    }

    // ---- Micro
    let _ = writeln!(w, "\n## Micro benchmarks (criterion, median time per operation)\n");
    let _ = writeln!(w, "| Operation | Library | Median |");
    let _ = writeln!(w, "|---|---|---:|");
    for (group, title, ids) in MICRO {
        for id in ids {
            if let Some(ns) = micro.get(&(group.to_owned(), (*id).to_owned())) {
                let _ = writeln!(w, "| {title} | {id} | {} |", time(*ns));
            }
        }
    }
    let _ = writeln!(
        w,
        "\n- encode + decode: this crate's field-tagged postcard record of every field; tower-sessions' `Record` through MessagePack \
         (as its Redis store); actix-session's state map through JSON (as all its stores).\n\
         - cookie seal + open: a change, then the `Set-Cookie` value and its opening as the next request. This crate: `CookieSessions::seal` + `open` \
         (AES-256-CBC + HMAC-SHA256). actix-session: `CookieSessionStore` JSON in a private cookie of the cookie crate, \
         built and read as its middleware does (AES-256-GCM). axum-extra: `PrivateCookieJar::add` rendered to `Set-Cookie`, then \
         `PrivateCookieJar::from_headers` + `get` (AES-256-GCM).\n\
         - store load + save: load the session, increment the counter, save; this crate through `SessionProvider`, tower-sessions \
         through its `Session` (its middleware's path), actix-session through its `SessionStore` (`load` + `update`). \
         On Redis, one server for the three, each library first runs untimed for 3 s, in turns with the others: \
         without it, whichever library was measured first ran slowest."
    );

    // ---- End to end
    let _ = writeln!(
        w,
        "\n## End to end (axum and actix-web over loopback HTTP/1.1)\n\n\
         {} keep-alive connections, each taking turns among 8 users with their own cookie jar (so {} live sessions), \
         {} run(s) of {:.0} s per app and request kind, interleaved across apps; medians of the runs. \
         `read` reads the counter, `rmw` increments it. The apps differ only in their session layer; \
         the `actix` ones run on actix-web (two workers, as the axum apps' runtime has two threads), the others on axum.\n",
        32,
        32 * 8,
        options.runs,
        options.secs
    );
    let _ = writeln!(w, "| App | Request | req/s | p50 | p99 | App CPU per request |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
    for app in App::ALL {
        for (kind, _) in KINDS {
            if let Some((rps, p50, p99)) = e2e_medians(e2e, app, kind) {
                let cpu = e2e_app_cpu(e2e, app, kind).map_or_else(|| "–".to_owned(), |us| format!("{us:.1} µs"));
                let _ = writeln!(w, "| {app} | {kind} | {rps:.0} | {p50:.0} µs | {p99:.0} µs | {cpu} |");
            }
        }
    }
    let _ = writeln!(
        w,
        "\n*App CPU per request*: the app process's user + system CPU time over the run (from `/proc`, in 10 ms ticks), \
         divided by its requests; the load generator runs in another process. On a loaded machine these predict the \
         ratios better than requests/s do."
    );

    // ---- Redis on the wire
    let _ = writeln!(
        w,
        "\n## Redis on the wire\n\n\
         From `INFO commandstats` and `INFO stats` (`total_net_input_bytes`, `total_net_output_bytes`) before and after, \
         less the measurement's own commands. Commands include those run inside Lua scripts (this crate's save is one `EVALSHA` \
         whose script runs `HMGET`, `HSET`, `PEXPIRE` only when the expiry moves into another minute, and under a clustered store the `SET` and `DEL` of the write's signature key; round trips are in the next table). \
         *Redis CPU* is the server's `used_cpu_user` + `used_cpu_sys` (`INFO cpu`) over the run. End to end, per request:\n"
    );
    let _ = writeln!(
        w,
        "| App | Request | Commands | Bytes to Redis | Bytes from Redis | Redis CPU | Commands by name |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---|");
    for app in App::ALL.into_iter().filter(|app| app.uses_redis()) {
        for (kind, _) in KINDS {
            if let Some((calls, bytes_in, bytes_out, names)) = e2e_traffic(e2e, app, kind) {
                let cpu = e2e_redis_cpu(e2e, app, kind).unwrap_or(0.0);
                let _ = writeln!(
                    w,
                    "| {app} | {kind} | {calls:.2} | {bytes_in:.0} | {bytes_out:.0} | {cpu:.1} µs | {names} |"
                );
            }
        }
    }
    let _ = writeln!(
        w,
        "\nStore operations alone, {WIRE_OPS} each, per operation. *Sent* counts the commands the client sent, \
         from `MONITOR` (each one round trip: none of these libraries pipelines a load or a save); *run* counts every \
         command Redis executed, including those a Lua script runs, from `INFO commandstats`.\n"
    );
    let _ = writeln!(
        w,
        "| Library | Operation | Sent (round trips) | Run | Bytes to Redis | Bytes from Redis | Commands sent | Commands run |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---|---|");
    for (name, counts) in wire {
        for (op, traffic, sent) in [
            ("load", &counts.load, &counts.load_sent),
            ("save", &counts.save, &counts.save_sent),
        ] {
            let per = |x: u64| x as f64 / WIRE_OPS as f64;
            let sent_names = sent
                .iter()
                .map(|(name, calls)| format!("{name}×{:.2}", per(*calls)))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                w,
                "| {name} | {op} | {:.2} | {:.2} | {:.0} | {:.0} | {sent_names} | {} |",
                per(sent.values().sum()),
                per(traffic.total_calls()),
                per(traffic.bytes_in),
                per(traffic.bytes_out),
                traffic.describe_per(WIRE_OPS)
            );
        }
    }

    // ---- Clustered store
    let _ = writeln!(
        w,
        "\n## Clustered store: one node and two, one Redis\n\n\
         One application node, then two, each a `ClusteredStore` (a local cache kept coherent by Redis's invalidations) \
         over the same spawned Redis, share {} sessions; with two, each request goes to either node, as behind a load \
         balancer without sticky sessions, so a read-modify-write finds the session cached only when the same node \
         wrote it last (about half the time): the other node's write invalidated its copy. A read-only request is a load; a read-modify-write request loads, increments the visit \
         counter and saves. {} requests per phase, after a warm-up phase; round trips are the commands the nodes sent, \
         seen with `MONITOR` (nothing is pipelined; the commands a script runs inside Redis are not round trips), so a \
         local hit is none.\n",
        clustered::SESSIONS,
        clustered::REQUESTS
    );
    let _ = writeln!(
        w,
        "| Nodes | Requests | Round trips per request | Commands per request | Local hit ratio |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|");
    for (nodes, phases) in [("one", &clustered.one_node), ("two", &clustered.two_nodes)] {
        for (name, phase) in [
            ("read-only".to_owned(), &phases.read_only),
            ("read-modify-write".to_owned(), &phases.read_modify_write),
            (
                format!("mixed, {}% read-only", clustered::READ_ONLY_PERCENT),
                &phases.mixed,
            ),
        ] {
            let _ = writeln!(
                w,
                "| {nodes} | {name} | {:.2} | {} | {:.1}% |",
                phase.round_trips(),
                phase.commands(),
                phase.hit_ratio()
            );
        }
    }
    let _ = writeln!(
        w,
        "\nEnd to end, the apps `session-clustered` (one node) and `session-clustered-2` (two nodes in one process, \
         each request to the other node than the one before) are in the end-to-end tables above."
    );

    // ---- Memory
    let _ = writeln!(
        w,
        "\n## Memory\n\n\
         Resident set growth of a fresh process filling the store with {} copies of the session (from `/proc/self/status`), \
         divided by the live sessions; this crate through `SessionProvider::save` into a `MemoryStore` with room for all of them, \
         tower-sessions through `SessionStore::create` into its `MemoryStore`.\n",
        options.sessions
    );
    let _ = writeln!(w, "| Store | Live sessions | Growth | Per session |");
    let _ = writeln!(w, "|---|---:|---:|---:|");
    for (name, footprint) in footprints {
        let _ = writeln!(
            w,
            "| {name} | {} | {:.1} MiB | {:.0} B |",
            footprint.sessions,
            footprint.bytes as f64 / 1024.0 / 1024.0,
            footprint.per_session()
        );
    }

    // ---- Flood
    let _ = writeln!(
        w,
        "\n## Flood: new anonymous sessions against logged-in users\n\n\
         A `MemoryStore` of 100,000 sessions holding 1,000 logged-in users (created, then logged in: \
         an ID regeneration) and filled to capacity with one-request visitors, then 200,000 more \
         one-request visitors, in a fresh process. The store evicts only sessions never written \
         again after their creation, so every logged-in user must survive.\n"
    );
    let _ = writeln!(w, "| measure | value |");
    let _ = writeln!(w, "|---|---|");
    let _ = write!(w, "{flood}");

    // ---- Reproduce
    let _ = writeln!(
        w,
        "\n## How to reproduce\n\n\
         ```sh\n\
         apt-get install redis-server     # the Redis benchmarks start their own server on a free loopback port\n\
         cargo run -p session-benches --release --bin report            # about 6 minutes once built; rewrites this file\n\
         cargo run -p session-benches --release --bin report -- --quick # a one-minute smoke run\n\
         cargo bench -p session-benches --bench micro                   # the criterion part alone\n\
         cargo bench -p session-benches --bench cookie                  # session alone: cookie seal and open\n\
         cargo bench -p session-benches --bench redis                   # session alone: Redis load, save, create\n\
         cargo run -p session-benches --release --bin sql_report        # the SQL section (PostgreSQL, MariaDB on this machine)\n\
         cargo run -p session-benches --release --bin index_report      # log out everywhere, and cookie revocation\n\
         ```\n\n\
         Options: `--runs N`, `--secs S`, `--sessions N`, `--no-micro`, `--out PATH`. What was profiled and changed, with \
         figures before and after: [benches/PROFILING.md](benches/PROFILING.md). The code is in `benches/`: \
         `src/content.rs` (the session), `src/ops.rs` and `benches/micro.rs` (micro), `src/apps.rs` and `src/load.rs` (end to end), \
         `src/memory.rs`; the private `redis-server` and its counters are in the workspace's `test-support/src/redis_server.rs`."
    );
    out
}

fn budgets(
    micro: &Micro,
    wire: &BTreeMap<&'static str, Wire>,
    e2e: &E2e,
    footprints: &BTreeMap<&str, Footprint>,
) -> Vec<String> {
    let mark = |met: bool| if met { "**met**" } else { "**not met**" };
    let mut lines = Vec::new();
    let get = |group: &str, id: &str| micro.get(&(group.to_owned(), id.to_owned())).copied();
    let faster_than_peers = |group: &str, peers: [&str; 2], what: &str| {
        let ours = get(group, "session")?;
        let peers: Vec<(&str, f64)> = peers
            .into_iter()
            .filter_map(|peer| Some((peer, get(group, peer)?)))
            .collect();
        let detail = peers
            .iter()
            .map(|(peer, t)| format!("{peer} {}", time(*t)))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "{what}: {} ({} vs {detail}).",
            mark(peers.iter().all(|(_, t)| ours < *t)),
            time(ours)
        ))
    };
    lines.extend(faster_than_peers(
        "cookie",
        ["actix-session", "axum-extra"],
        "Cookie seal + open faster than every peer's cookie path",
    ));
    lines.extend(faster_than_peers(
        "redis",
        ["tower-sessions", "actix-session"],
        "Redis store load + save faster than every peer's",
    ));
    let rps = |app: App, kind: &str| e2e_medians(e2e, app, kind).map(|(rps, _, _)| rps);
    let at_least = |ours: App, peer: App, kind: &str, times: f64, what: &str| {
        let (o, t, ratio) = (rps(ours, kind)?, rps(peer, kind)?, e2e_ratio(e2e, ours, peer, kind)?);
        let request = if kind == "rmw" {
            "read-modify-write"
        } else {
            "read-only"
        };
        Some(format!(
            "E2e {request} ≥ {times}× {what}: {} ({ratio:.2}×; medians {o:.0} vs {t:.0} req/s).",
            mark(ratio >= times)
        ))
    };
    lines.extend(at_least(
        App::OursMemory,
        App::TowerMemory,
        "rmw",
        1.5,
        "tower-sessions, memory store",
    ));
    for kind in ["rmw", "read"] {
        lines.extend(at_least(
            App::OursRedis,
            App::TowerRedis,
            kind,
            1.2,
            "tower-sessions-redis-store, Redis store (axum)",
        ));
        lines.extend(at_least(
            App::OursActixRedis,
            App::ActixRedis,
            kind,
            1.2,
            "actix-session's Redis store (actix-web)",
        ));
    }
    for (app, nodes) in [(App::OursClustered, "one node"), (App::OursClusteredTwo, "two nodes")] {
        lines.extend(at_least(
            app,
            App::TowerRedis,
            "rmw",
            1.5,
            &format!("tower-sessions-redis-store, clustered store, {nodes}"),
        ));
        if let (Some(o), Some(m), Some(ratio)) = (
            rps(app, "read"),
            rps(App::OursMemory, "read"),
            e2e_ratio(e2e, app, App::OursMemory, "read"),
        ) {
            lines.push(format!(
                "E2e read-only within 20% of the memory store, clustered store, {nodes}: {} ({:.0}%; medians {o:.0} vs {m:.0} req/s).",
                mark(ratio >= 0.8),
                100.0 * ratio
            ));
        }
    }
    let redis_cpu = |app: App| e2e_redis_cpu(e2e, app, "rmw");
    if let Some(ours) = redis_cpu(App::OursRedis) {
        let peers: Vec<(App, f64)> = [App::TowerRedis, App::ActixRedis]
            .into_iter()
            .filter_map(|app| Some((app, redis_cpu(app)?)))
            .collect();
        if let Some(smallest) = peers.iter().map(|(_, us)| *us).reduce(f64::min) {
            let detail = peers
                .iter()
                .map(|(app, us)| format!("{app} {us:.1} µs"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "Redis CPU per e2e read-modify-write at most 1.5× the smallest peer's: {} ({ours:.1} µs vs {detail}).",
                mark(ours <= 1.5 * smallest)
            ));
        }
    }
    if let Some(none) = rps(App::NoSession, "rmw") {
        for (app, share) in [(App::OursMemory, 0.9), (App::OursCookie, 0.85)] {
            if let (Some(o), Some(ratio)) = (rps(app, "rmw"), e2e_ratio(e2e, app, App::NoSession, "rmw")) {
                lines.push(format!(
                    "E2e read-modify-write ≥ {:.0}% of the app without sessions, {app}: {} ({:.0}%; medians {o:.0} vs {none:.0} req/s).",
                    100.0 * share,
                    mark(ratio >= share),
                    100.0 * ratio
                ));
            }
        }
    }
    if let Some(ours) = wire.get("session") {
        let per = |sent: &BTreeMap<String, u64>| sent.values().sum::<u64>() as f64 / WIRE_OPS as f64;
        lines.push(format!(
            "Redis: at most one round trip per load and per save: {} ({:.2} commands sent per load, {:.2} per save).",
            mark(per(&ours.load_sent) <= 1.0 && per(&ours.save_sent) <= 1.0),
            per(&ours.load_sent),
            per(&ours.save_sent)
        ));
        let bytes = |x: &Wire| x.load.bytes_in + x.load.bytes_out + x.save.bytes_in + x.save.bytes_out;
        let peers: Vec<_> = wire.iter().filter(|(name, _)| **name != "session").collect();
        let met = peers.iter().all(|(_, theirs)| bytes(ours) <= bytes(theirs));
        let detail = peers
            .iter()
            .map(|(name, theirs)| format!("{name} {:.0} B", bytes(theirs) as f64 / WIRE_OPS as f64))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "Redis: no more bytes on the wire than the smallest peer's for the same data: {} ({:.0} B per load + save vs {detail}).",
            mark(met),
            bytes(ours) as f64 / WIRE_OPS as f64
        ));
    } else {
        lines
            .push("Redis budgets: not measured (this crate's Redis store is not available on this branch).".to_owned());
    }
    if let Some(ours) = footprints.get("session") {
        lines.push(format!(
            "Memory store: {} live sessions in bounded memory: **met** ({:.0} B per session, {:.0} MiB in all; the store is bounded by its capacity and evicts beyond it).",
            ours.sessions,
            ours.per_session(),
            ours.bytes as f64 / 1024.0 / 1024.0
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callgrind_dump_gives_its_summary() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 838980186\nfn=(1) main\n";
        assert_eq!(callgrind_total(dump), Some(838_980_186));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn a_comparison_names_its_path_apps_and_builds() {
        let args = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let comparison = parse_comparison(&args("/rmw session-redis=/tmp/before session-redis --runs 5")).unwrap();
        assert_eq!(
            comparison,
            Comparison {
                path: "/rmw",
                runs: 5,
                secs: 4.0,
                apps: vec![
                    (
                        "session-redis=/tmp/before".into(),
                        App::OursRedis,
                        Some("/tmp/before".into())
                    ),
                    ("session-redis".into(), App::OursRedis, None),
                ],
            }
        );
        assert!(parse_comparison(&args("/rmw")).is_err(), "no app");
        assert!(parse_comparison(&args("session-redis /rmw")).is_err(), "no path first");
        assert!(parse_comparison(&args("/rmw no-such-app")).is_err());
        assert!(parse_comparison(&args("/rmw session-redis --secs")).is_err());
    }

    #[test]
    fn the_other_reports_sections_and_budget_line_are_kept() {
        let path = std::env::temp_dir().join(format!("session-report-keep-{}.md", std::process::id()));
        let previous = "## Budgets\n\n- old.\n- Log out everywhere on Redis: **met**.\n\n## Micro benchmarks\n\n\
                        <!-- sql:begin -->\nS\n<!-- sql:end -->\n<!-- index:begin -->\nI\n<!-- index:end -->\n\n## How to reproduce\n";
        std::fs::write(&path, previous).unwrap();
        let text = "## Budgets\n\n- new.\n\n## Micro benchmarks\n\nM\n\n## How to reproduce\n".to_owned();
        let kept = keep_other_sections(&path, text);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            kept,
            "## Budgets\n\n- new.\n- Log out everywhere on Redis: **met**.\n\n## Micro benchmarks\n\nM\n\n\
             <!-- sql:begin -->\nS\n<!-- sql:end -->\n\n<!-- index:begin -->\nI\n<!-- index:end -->\n\n## How to reproduce\n"
        );
    }
}
