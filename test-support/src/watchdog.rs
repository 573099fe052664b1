//! Processes held in a `static` outlive every `Drop`: a watchdog kills them when the
//! process that started them exits, however it exits.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
};

/// The default Redis port: never used, a system Redis may run there.
pub(crate) const DEFAULT_PORT: u16 = 6379;

/// A value that lives until the process exits, and the watchdog that kills its processes
/// then.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    pub(crate) value: T,
    /// Never waited for: it outlives this process by design (its own parent then reaps it).
    _watchdog: Child,
}

impl<T> Shared<T> {
    /// Keeps `value`, whose processes are `pids`, and starts a watchdog that SIGKILLs them
    /// and removes `dir` (if any) once this process is gone.
    pub(crate) fn new(value: T, pids: &[u32], dir: Option<&Path>) -> Self {
        let parent = std::process::id();
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill -9 {} 2>/dev/null",
            pids.join(" ")
        );
        if let Some(dir) = dir {
            script.push_str(&format!("; rm -rf '{}'", dir.display()));
        }
        // Its standard streams must not hold the test harness's pipes open.
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start the watchdog of a shared Redis (sh): {error}"));
        Self {
            value,
            _watchdog: watchdog,
        }
    }
}

/// A free loopback port, never 6379.
pub(crate) fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        if port != DEFAULT_PORT {
            return port;
        }
    }
}
