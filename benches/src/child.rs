//! An app served by a child process of the benchmark binary, so the app's CPU is its own
//! and not the load generator's: the parent's handle ([`ChildServer`]) and the child's side
//! ([`serve_axum`], [`stdin_closed`]).

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::apps::BoxError;

/// A running child that serves an app; it stops when dropped (its standard input closes).
pub struct ChildServer {
    child: Child,
    /// Where the app listens.
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Spawns `command`, which must print `listening ADDR` on its first line and stop when
    /// its standard input closes; `what` names it in errors.
    ///
    /// # Errors
    ///
    /// When the child cannot be spawned or does not announce its address.
    pub fn spawn(mut command: Command, what: &str) -> Result<Self, BoxError> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("{what} did not start: {line:?}"))?
            .parse()?;
        Ok(Self { child, addr })
    }

    /// The child's process ID.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time the child has used so far (user and system, all its threads), from
    /// `/proc` (Linux); `None` where that cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // In USER_HZ ticks, which are 100 a second on x86 and ARM Linux.
        Some(Duration::from_millis(ticks * 10))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The runtime the benchmark binaries serve and load on: two workers, one per core.
///
/// # Errors
///
/// When the runtime cannot be built.
pub fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves when standard input closes: how a [`ChildServer`] tells its child to stop.
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
}

/// The child's side for an axum app: serves `router` on a free loopback port, prints
/// `listening ADDR`, and stops when standard input closes.
///
/// # Errors
///
/// When the port cannot be bound or the server fails.
pub async fn serve_axum(router: axum::Router) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(stdin_closed())
        .await?;
    Ok(())
}
