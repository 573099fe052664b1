//! An app served by a child process of the benchmark binary, so the app's CPU is its own
//! and not the load generator's.

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
