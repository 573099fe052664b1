//! A PostgreSQL server of the caller's own (`initdb` + `postgres`) on a free loopback port,
//! to freeze, stop and start again in outage tests: never the machine's shared server.
//!
//! Needs `initdb` and `postgres` on the `PATH` (Debian: `apt-get install postgresql`, then
//! link or add `/usr/lib/postgresql/<version>/bin`). PostgreSQL refuses to run as root:
//! as root, the server runs as `nobody` (through `runuser`).

use std::{
    fs,
    io::{self, Read as _},
    net::{Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::watchdog::free_port;

const MISSING: &str = "initdb/postgres not found on the PATH: install PostgreSQL (`apt-get install postgresql`) \
     and put its bin directory (e.g. /usr/lib/postgresql/15/bin) on the PATH";

/// The user the server runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";

/// A running `postgres` with a data directory of its own, killed (and its directory
/// removed) on drop. Its superuser is `postgres`, with trust authentication.
#[derive(Debug)]
pub struct PostgresServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    /// `name=value` settings given to `postgres -c`.
    settings: Vec<String>,
}

fn is_root() -> bool {
    // The effective user of this process, as the kernel reports it.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as the unprivileged user when this process is root.
fn command(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", UNPRIVILEGED, "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn spawn_error(program: &str, error: &io::Error) -> io::Error {
    match error.kind() {
        io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, MISSING),
        kind => io::Error::new(kind, format!("could not start {program}: {error}")),
    }
}

impl PostgresServer {
    /// Creates a cluster in a fresh directory (`initdb`, a few seconds) and starts it on a
    /// free loopback port; returns once it accepts connections.
    ///
    /// # Panics
    ///
    /// When `initdb` or `postgres` is missing (with how to install them) or fails.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start`](Self::start), with the failure returned.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] when PostgreSQL is missing, others when it fails.
    pub fn try_start() -> io::Result<Self> {
        Self::try_start_with(&[])
    }

    /// [`start`](Self::start) with extra server settings (`name=value`, as `postgres -c`),
    /// e.g. `log_statement=all` to count statements in [`log_text`](Self::log_text).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with(settings: &[&str]) -> Self {
        Self::try_start_with(settings).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start_with(settings: &[&str]) -> io::Result<Self> {
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("session-postgres-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        if is_root() {
            let chown = Command::new("chown")
                .args([&format!("{UNPRIVILEGED}:"), &dir.to_string_lossy().into_owned()])
                .status()?;
            if !chown.success() {
                return Err(io::Error::other(format!(
                    "could not chown {} to {UNPRIVILEGED}",
                    dir.display()
                )));
            }
        }
        // Should this process end without dropping the server (a panic in a destructor, a
        // kill), a watchdog kills the postmaster (its connections follow) and removes the
        // directory once this process is gone.
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
             kill -9 $(head -n1 '{pid_file}' 2>/dev/null) 2>/dev/null; sleep 1; rm -rf '{dir}'",
            parent = std::process::id(),
            pid_file = dir.join("data").join("postmaster.pid").display(),
            dir = dir.display(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Never waited for: it outlives this process by design.
        std::mem::forget(watchdog);
        let mut server = Self {
            dir,
            port: 0,
            child: None,
            settings: settings.iter().map(|setting| (*setting).to_owned()).collect(),
        };
        let output = command("initdb")
            .args(["-D", &server.data().to_string_lossy(), "-U", "postgres", "-A", "trust"])
            .args(["--no-sync", "--no-instructions", "-E", "UTF8"])
            .current_dir(&server.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| spawn_error("initdb", &error))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        // A port found free can be taken by another test before ours binds it: try again.
        let mut attempt = 1;
        loop {
            server.port = free_port();
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(why) if attempt < 3 => {
                    eprintln!("retrying postgres on another port: {why}");
                    attempt += 1;
                }
                Err(why) => return Err(why),
            }
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// What the server has logged so far (its standard error).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL of the database `database`, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data: every
    /// committed write is still there.
    ///
    /// # Errors
    ///
    /// When `postgres` does not start or accept connections within 20 seconds.
    pub fn start_again(&mut self) -> io::Result<()> {
        let log = fs::File::create(self.log())?;
        if is_root() {
            let _ = Command::new("chown")
                .args([&format!("{UNPRIVILEGED}:"), &self.log().to_string_lossy().into_owned()])
                .status();
        }
        let child = command("postgres")
            .args(["-D", &self.data().to_string_lossy()])
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1"])
            .args(["-k", &self.dir.to_string_lossy()])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
            ])
            .args(self.settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| spawn_error("postgres", &error))?;
        self.child = Some(child);
        self.wait_until_ready(Duration::from_secs(20))
    }

    fn wait_until_ready(&mut self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            // The postmaster writes `ready` into its pid file once it accepts connections.
            let ready = fs::read_to_string(self.data().join("postmaster.pid"))
                .is_ok_and(|pid_file| pid_file.lines().any(|line| line.trim() == "ready"));
            if ready && TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let mut log = String::new();
                let _ = fs::File::open(self.log()).and_then(|mut file| file.read_to_string(&mut log));
                self.kill();
                return Err(io::Error::other(format!(
                    "postgres on port {} did not become ready ({exited:?}); its log:\n{log}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's pid (not `runuser`'s), from its pid file.
    fn postmaster(&self) -> Option<u32> {
        fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The postmaster and every process it started (one per connection, and its workers).
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = self.postmaster() else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        if let Ok(entries) = fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                    continue;
                };
                let parent = fs::read_to_string(entry.path().join("stat")).ok().and_then(|stat| {
                    // `pid (comm) state ppid …`; comm may hold spaces, so split after `)`.
                    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
                if parent == Some(postmaster) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    fn signal(&self, signal: &str) {
        let pids: Vec<String> = self.processes().iter().map(u32::to_string).collect();
        if pids.is_empty() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .stderr(Stdio::null())
            .status()
            .expect("run kill");
        // A connection's process may exit between the listing and the signal: only a
        // freeze must reach every one.
        assert!(status.success() || signal != "STOP", "kill -{signal} {pids:?} failed");
    }

    /// Freezes the server and every connection's process (SIGSTOP): connections stay open,
    /// new ones are accepted by the kernel, and nothing is answered.
    ///
    /// # Panics
    ///
    /// When `kill` fails.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    ///
    /// # Panics
    ///
    /// When `kill` fails.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Kills the server (SIGKILL, as in a crash): connections are refused until
    /// [`start_again`](Self::start_again). Committed data survives.
    pub fn stop(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A crashed server leaves its pid file; the next start checks and replaces it.
    }

    fn kill(&mut self) {
        self.signal("CONT");
        self.signal("KILL");
        if let Some(mut child) = self.child.take() {
            // `runuser` reaps the postmaster and then exits: killing it first would leave the
            // postmaster a zombie whose pid, still in use, makes the next start refuse the
            // data directory.
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The directory of its data and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
