//! A `redis-server` of the test's own, on a free loopback port, killed on drop.
//!
//! Never the default port 6379: a system Redis may run there.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const MISSING: &str = "redis-server not found: install it with `apt-get install redis-server`";

/// A running `redis-server` without persistence.
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// Starts a server that requires `password` (`requirepass`), if any.
    pub fn start_with_password(password: Option<&str>) -> Self {
        // A port found free can be taken by another test's server before ours binds it:
        // then ours exits, and it starts again on another port.
        for attempt in 1.. {
            match Self::start_on(free_port(), password) {
                Ok(server) => return server,
                Err(why) if attempt < 3 => eprintln!("retrying redis-server on another port: {why}"),
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    fn start_on(port: u16, password: Option<&str>) -> Result<Self, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(
                password
                    .map(|password| ["--requirepass", password])
                    .into_iter()
                    .flatten(),
            )
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| match error.kind() {
                std::io::ErrorKind::NotFound => panic!("{MISSING}"),
                _ => panic!("could not start redis-server: {error}"),
            });
        let mut server = Self {
            child,
            port,
            password: password.map(str::to_owned),
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `redis://` URL, with the password if it has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Stops the process (SIGSTOP): connections stay open but nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Kills the server (its data is lost: there is no persistence) and starts a new one
    /// on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let password = self.password.take();
        *self = Self::start_on(self.port, password.as_deref()).unwrap_or_else(|why| panic!("restarting: {why}"));
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(self.port) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status} before answering on port {}",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING within 10 s on port {}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whoever answered must be our process, not another test's server on the same port.
        if self.process_id() != Some(self.child.id()) {
            return Err(format!("port {} is answered by another redis-server", self.port));
        }
        Ok(())
    }

    fn process_id(&self) -> Option<u32> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut connection).ok()?;
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix("process_id:"))?
            .parse()
            .ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a frozen (SIGSTOPped) process.
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    // A server with a password answers, but refuses until authenticated.
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}
