//! The SQL stores against `tower-sessions-sqlx-store`, on the database servers of this
//! machine (PostgreSQL at 127.0.0.1:5432, MariaDB at 127.0.0.1:3306; SQLite on a file):
//! micro load + save, and end-to-end read-modify-write and read-only requests per second
//! through axum over loopback. Writes its section of BENCHMARKS.md (between the
//! `sql:begin` and `sql:end` markers).
//!
//! `cargo run -p session-benches --release --bin sql_report [-- --runs N --secs S --only DB]`
//! (`--only` measures one database and prints its rows without touching BENCHMARKS.md;
//! `drive ours|tower DB PATH SECS` runs one library alone, for profiling).

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use session::{MySqlStore, PostgresStore, SqliteStore};
use session_benches::{
    apps::BoxError,
    child::{ChildServer, runtime, serve_axum},
    load::{Clients, Load, median},
    ops::{OursStore, TowerStoreOps},
    sql::{self, Db},
};
use sqlx::{Connection as _, Executor as _};

const DATABASE: &str = "session_bench";

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args[1..]),
        Some("drive") => return drive(&args[1..]),
        _ => {}
    }
    let (mut runs, mut secs) = (5usize, 3.0f64);
    let mut only: Option<Db> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => runs = value()?.parse()?,
            "--secs" => secs = value()?.parse()?,
            "--only" => only = Some(value()?.parse()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    report(runs, secs, only)
}

/// A fresh database (or SQLite file) for one library on `db`: its URL.
async fn fresh(db: Db, library: &str, dir: &std::path::Path) -> Result<String, BoxError> {
    let name = format!("{DATABASE}_{library}");
    Ok(match db {
        Db::Postgres => {
            let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                .await?;
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        }
        Db::MySql => {
            let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306/").await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                .await?;
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
            format!("mysql://root@127.0.0.1:3306/{name}")
        }
        Db::Sqlite => {
            let path = dir.join(format!("{name}.db"));
            let _ = std::fs::remove_file(&path);
            format!("sqlite://{}?mode=rwc", path.display())
        }
    })
}

/// `serve ours|tower DB URL`: serves the app on a free loopback port, prints
/// `listening ADDR`, and stops when standard input closes.
fn serve(args: &[String]) -> Result<(), BoxError> {
    let [library, db, url] = args else {
        return Err("serve needs ours|tower DB URL".into());
    };
    let db: Db = db.parse()?;
    runtime()?.block_on(async move {
        let router = match library.as_str() {
            "ours" => sql::ours_router(db, url).await?,
            _ => sql::tower_router(db, url).await?,
        };
        serve_axum(router).await
    })
}

/// `drive ours|tower DB PATH SECS`: one library alone on a fresh database, for profiling:
/// serves it in a child, has every user call `/init`, sends `PATH` for `SECS` seconds to
/// warm up, prints `measuring` on standard error, then sends it for `SECS` seconds more and
/// prints the requests and the rate. Attach `perf stat` to the child and the database server between
/// the two lines.
fn drive(args: &[String]) -> Result<(), BoxError> {
    let [library, db, path, secs] = args else {
        return Err("drive needs ours|tower DB PATH SECS".into());
    };
    let db: Db = db.parse()?;
    let path: &'static str = match path.as_str() {
        "/rmw" => "/rmw",
        "/read" => "/read",
        other => return Err(format!("unknown path {other}").into()),
    };
    let dir = std::env::temp_dir().join(format!("session-sql-drive-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = runtime()?;
    let url = runtime.block_on(fresh(db, library, &dir))?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["serve", library, db.name(), &url]);
    let server = ChildServer::spawn(command, library)?;
    let load = Load {
        connections: 32,
        users_per_connection: 8,
        duration: Duration::from_secs_f64(secs.parse()?),
        max_requests_per_connection: 1_000_000,
    };
    let mut clients = runtime.block_on(Clients::connect(server.addr, load, "/init"))?;
    runtime.block_on(clients.run(path))?;
    eprintln!("measuring");
    let outcome = runtime.block_on(clients.run(path))?;
    eprintln!(
        "done requests={} errors={} req/s={:.0} a_failure={}",
        outcome.requests,
        outcome.errors,
        outcome.per_second(),
        outcome.a_failure.as_deref().unwrap_or("none").replace(' ', "_")
    );
    drop(clients);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Median microseconds per load + save over `batches` batches of `per_batch` sequential
/// operations.
async fn time_ops<F, Fut>(batches: usize, per_batch: usize, mut op: F) -> Result<f64, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, BoxError>>,
{
    for _ in 0..per_batch {
        op().await?;
    }
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        for _ in 0..per_batch {
            op().await?;
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6 / per_batch as f64);
    }
    Ok(median(samples))
}

/// Micro load + save in this process: (ours µs, tower µs).
async fn micro(db: Db, ours_url: &str, tower_url: &str) -> Result<(f64, f64), BoxError> {
    let (batches, per_batch) = (7, 300);
    let ours = match db {
        Db::Postgres => {
            let store = PostgresStore::builder_from_url(ours_url)
                .command_timeout(sql::COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            let ops = OursStore::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
        Db::Sqlite => {
            let store = SqliteStore::builder_from_url(ours_url)
                .command_timeout(sql::COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            let ops = OursStore::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
        Db::MySql => {
            let store = MySqlStore::builder_from_url(ours_url)
                .command_timeout(sql::COMMAND_TIMEOUT)
                .build()
                .await?;
            store.migrate().await?;
            let ops = OursStore::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
    };
    let tower = match db {
        Db::Postgres => {
            let store = tower_sessions_sqlx_store::PostgresStore::new(sqlx::PgPool::connect(tower_url).await?);
            store.migrate().await?;
            let ops = TowerStoreOps::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
        Db::Sqlite => {
            let store = tower_sessions_sqlx_store::SqliteStore::new(sqlx::SqlitePool::connect(tower_url).await?);
            store.migrate().await?;
            let ops = TowerStoreOps::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
        Db::MySql => {
            let store = tower_sessions_sqlx_store::MySqlStore::new(sqlx::MySqlPool::connect(tower_url).await?);
            store.migrate().await?;
            let ops = TowerStoreOps::new(store).await?;
            time_ops(batches, per_batch, || ops.load_save()).await?
        }
    };
    Ok((ours, tower))
}

/// One database's figures.
struct Figures {
    db: Db,
    micro: (f64, f64),
    /// Per kind (`rmw`, `read`): medians of ours req/s, tower req/s, and of the per-run ratio.
    e2e: Vec<(&'static str, f64, f64, f64)>,
}

/// The machine's one-minute load average, if it can be read.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn report(runs: usize, secs: f64, only: Option<Db>) -> Result<(), BoxError> {
    let started = Instant::now();
    let load_before = load_average();
    let dir = std::env::temp_dir().join(format!("session-sql-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = runtime()?;
    let load = Load {
        connections: 32,
        users_per_connection: 8,
        duration: Duration::from_secs_f64(secs),
        max_requests_per_connection: 1_000_000,
    };
    let mut all = Vec::new();
    for db in Db::ALL.into_iter().filter(|db| only.is_none_or(|only| only == *db)) {
        eprintln!("== {db}");
        let (ours_url, tower_url) = runtime
            .block_on(async { Ok::<_, BoxError>((fresh(db, "ours", &dir).await?, fresh(db, "tower", &dir).await?)) })?;
        let micro = runtime.block_on(micro(db, &ours_url, &tower_url))?;
        eprintln!("micro load+save: ours {:.0} us, tower {:.0} us", micro.0, micro.1);
        let start = |library: &str, url: &str| -> Result<ChildServer, BoxError> {
            let mut command = Command::new(std::env::current_exe()?);
            command.args(["serve", library, db.name(), url]);
            ChildServer::spawn(command, &format!("{library} on {db}"))
        };
        let servers = [start("ours", &ours_url)?, start("tower", &tower_url)?];
        let mut clients = Vec::new();
        for server in &servers {
            clients.push(runtime.block_on(Clients::connect(server.addr, load, "/init"))?);
        }
        let mut e2e = Vec::new();
        for (kind, path) in [("rmw", "/rmw"), ("read", "/read")] {
            let (mut ours, mut tower, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..runs {
                let mut rates = [0.0f64; 2];
                for (slot, client) in clients.iter_mut().enumerate() {
                    let outcome = runtime.block_on(client.run(path))?;
                    if outcome.errors > 0 {
                        return Err(format!(
                            "{db} {kind}, {}: {} failed requests, one of them {}",
                            ["ours", "tower-sessions"][slot],
                            outcome.errors,
                            outcome.a_failure.unwrap_or_default()
                        )
                        .into());
                    }
                    rates[slot] = outcome.per_second();
                }
                eprintln!(
                    "run {} {db} {kind}: ours {:.0} req/s, tower {:.0} req/s",
                    run + 1,
                    rates[0],
                    rates[1]
                );
                ours.push(rates[0]);
                tower.push(rates[1]);
                ratios.push(rates[0] / rates[1]);
            }
            e2e.push((kind, median(ours), median(tower), median(ratios)));
        }
        drop(clients);
        drop(servers);
        all.push(Figures { db, micro, e2e });
    }
    let _ = std::fs::remove_dir_all(&dir);
    let loads = (load_before, load_average());
    let section = render(&all, runs, secs, started.elapsed(), loads);
    if only.is_some() {
        print!("{section}");
        return Ok(());
    }
    write_section(&section)
}

fn render(all: &[Figures], runs: usize, secs: f64, took: Duration, loads: (Option<f64>, Option<f64>)) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "## SQL stores: this crate against tower-sessions-sqlx-store\n");
    let _ = writeln!(
        w,
        "Generated by `cargo run -p session-benches --release --bin sql_report` in {:.0} s: PostgreSQL 15 and MariaDB 10.11 \
         running on this machine (127.0.0.1), SQLite on a file; each library's store over its own sqlx pool of {} connections \
         (this crate's with a command timeout of {} s: the peer has none), in a database of its own, with the benchmark session above. End to end: {runs} interleaved runs of {secs} s each, \
         32 keep-alive connections of 8 users each, through axum; medians. This crate writes one statement per load and \
         one per save (`cargo test --all-features --test store_postgres one_statement -- --nocapture` counts them in the \
         server's own log).\n",
        took.as_secs_f64(),
        sql::POOL_SIZE,
        sql::COMMAND_TIMEOUT.as_secs()
    );
    // The figures follow the rest of the machine's work: both libraries share its cores.
    if let (Some(before), Some(after)) = loads {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let _ = writeln!(
            w,
            "One-minute load average {before:.2} before and {after:.2} after, on {cores} cores.\n"
        );
    }
    let _ = writeln!(
        w,
        "| Database | load + save, ours | load + save, tower-sessions | ratio | read-modify-write req/s, ours | tower-sessions | ratio | read-only req/s, ours | tower-sessions | ratio |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for figures in all {
        let (ours, tower) = figures.micro;
        let mut line = format!(
            "| {} | {ours:.0} µs | {tower:.0} µs | {:.2}x |",
            figures.db,
            tower / ours
        );
        for (_, ours, tower, ratio) in &figures.e2e {
            let _ = write!(line, " {ours:.0} | {tower:.0} | {ratio:.2}x |");
        }
        let _ = writeln!(w, "{line}");
    }
    w
}

/// Replaces the SQL section of BENCHMARKS.md (or adds it before "How to reproduce").
fn write_section(section: &str) -> Result<(), BoxError> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "BENCHMARKS.md"].iter().collect();
    let text = std::fs::read_to_string(&path)?;
    let block = format!("<!-- sql:begin -->\n{section}<!-- sql:end -->\n");
    let updated = match (text.find("<!-- sql:begin -->"), text.find("<!-- sql:end -->")) {
        (Some(begin), Some(end)) => {
            let end = end + "<!-- sql:end -->\n".len();
            format!("{}{block}{}", &text[..begin], &text[end.min(text.len())..])
        }
        _ => match text.find("## How to reproduce") {
            Some(at) => format!("{}{block}\n{}", &text[..at], &text[at..]),
            None => format!("{text}\n{block}"),
        },
    };
    std::fs::write(&path, updated)?;
    eprintln!("wrote the SQL section of {}", path.display());
    print!("{section}");
    Ok(())
}
