//! A `redis-server` of the test's own, on a free loopback port, killed on drop.
//!
//! Never the default port 6379: a system Redis may run there.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

const MISSING: &str = "redis-server not found: install it with `apt-get install redis-server`";

/// A running `redis-server` without persistence.
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
    tls: Option<Tls>,
}

/// How a server is started: a password, or TLS only.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Plain(Option<&'a str>),
    Tls(&'a Tls),
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// Starts a server that requires `password` (`requirepass`), if any.
    pub fn start_with_password(password: Option<&str>) -> Self {
        Self::start_retrying(Mode::Plain(password))
    }

    /// Starts a server that speaks only TLS (`rediss://`), its certificate signed by a CA
    /// made for it ([`ca_pem`](Self::ca_pem)). Needs `openssl` to make the certificates.
    pub fn start_tls() -> Self {
        let tls = Tls::generate();
        let mut server = Self::start_retrying(Mode::Tls(&tls));
        server.tls = Some(tls);
        server
    }

    fn start_retrying(mode: Mode<'_>) -> Self {
        // A port found free can be taken by another test's server before ours binds it:
        // then ours exits, and it starts again on another port.
        for attempt in 1.. {
            match Self::start_on(free_port(), mode) {
                Ok(server) => return server,
                Err(why) if attempt < 3 => eprintln!("retrying redis-server on another port: {why}"),
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    fn start_on(port: u16, mode: Mode<'_>) -> Result<Self, String> {
        let mut command = Command::new("redis-server");
        match mode {
            Mode::Plain(password) => {
                command.args(["--port", &port.to_string()]);
                if let Some(password) = password {
                    command.args(["--requirepass", password]);
                }
            }
            Mode::Tls(tls) => {
                let file = |name: &str| tls.dir.join(name).to_string_lossy().into_owned();
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cert-file", &file("server.pem")])
                    .args(["--tls-key-file", &file("server.key")])
                    .args(["--tls-ca-cert-file", &file("ca.pem")])
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        let child = command
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
            password: match mode {
                Mode::Plain(password) => password.map(str::to_owned),
                Mode::Tls(_) => None,
            },
            tls: None,
        };
        server.wait_until_ready(mode)?;
        Ok(server)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its `redis://` URL (`rediss://` for TLS), with the password if it has one.
    pub fn url(&self) -> String {
        url(self.port, self.password.as_deref(), self.tls.is_some())
    }

    /// The CA that signed a TLS server's certificate, as PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.tls.as_ref().expect("a TLS server").ca.clone()
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
        assert!(self.tls.is_none(), "restart is for plain servers");
        self.kill();
        let password = self.password.take();
        *self = Self::start_on(self.port, Mode::Plain(password.as_deref()))
            .unwrap_or_else(|why| panic!("restarting: {why}"));
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

    fn wait_until_ready(&mut self, mode: Mode<'_>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        // A TLS port answers only a handshake: listening is enough until the check below.
        let up = |port| match mode {
            Mode::Plain(_) => ping(port),
            Mode::Tls(_) => TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok(),
        };
        while !up(self.port) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status} before answering on port {}",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("redis-server did not answer within 10 s on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whoever answered must be our process, not another test's server on the same port.
        if self.process_id(mode) != Some(self.child.id()) {
            return Err(format!("port {} is answered by another redis-server", self.port));
        }
        Ok(())
    }

    fn process_id(&self, mode: Mode<'_>) -> Option<u32> {
        let client = match mode {
            Mode::Plain(password) => redis::Client::open(url(self.port, password, false)),
            Mode::Tls(tls) => redis::Client::build_with_tls(
                url(self.port, None, true),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(tls.ca.clone()),
                },
            ),
        }
        .ok()?;
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

/// A TLS server's certificates: a CA of the test's own, and a certificate for IP
/// 127.0.0.1 that it signed, in a directory removed on drop.
struct Tls {
    dir: PathBuf,
    ca: Vec<u8>,
}

impl Tls {
    fn generate() -> Self {
        static DIRS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "session-redis-tls-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificates' directory");
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write server.ext");
        let mut tls = Self { dir, ca: Vec::new() };
        tls.openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=session-test-CA");
        tls.openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
        tls.openssl(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext",
        );
        tls.ca = std::fs::read(tls.dir.join("ca.pem")).expect("read ca.pem");
        tls
    }

    fn openssl(&self, args: &str) {
        let output = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| match error.kind() {
                std::io::ErrorKind::NotFound => panic!(
                    "openssl not found (it makes the TLS test's certificates): install it with `apt-get install openssl`"
                ),
                _ => panic!("could not run openssl: {error}"),
            });
        assert!(
            output.status.success(),
            "openssl {args} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url(port: u16, password: Option<&str>, tls: bool) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    match password {
        Some(password) => format!("{scheme}://:{password}@127.0.0.1:{port}/"),
        None => format!("{scheme}://127.0.0.1:{port}/"),
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
