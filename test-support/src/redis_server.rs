//! A `redis-server` of the caller's own on a free loopback port, killed on drop, and the
//! counters that benchmarks read from it (`INFO commandstats`, `INFO stats`, `MONITOR`).
//!
//! Never the default port 6379: a system Redis may run there.

use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpStream},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::watchdog::{Shared, free_port};

const MISSING: &str = "redis-server not found: install it with `apt-get install redis-server`";

/// Commands that the measurement itself sends, or that clients send once per connection:
/// left out of the per-request counts.
const OVERHEAD_COMMANDS: [&str; 7] = ["info", "config", "client", "hello", "ping", "select", "flushall"];

/// RESP framing of a two-argument request: `*2`, two `$n` lines, five CRLFs.
const REQUEST_FRAMING: u64 = 18;
/// The `INFO stats` request of the closing snapshot, counted before its counters are read.
const STATS_REQUEST_BYTES: u64 = REQUEST_FRAMING + 9;
/// The bytes of a bulk reply of `len` bytes: `$<len>`, two CRLFs and the text.
fn bulk_reply_bytes(len: usize) -> u64 {
    (1 + len.to_string().len() + 4 + len) as u64
}

/// A running `redis-server` without persistence, killed on drop (SIGKILL, which also ends
/// a frozen one).
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    password: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// How a server is started: a password, or TLS only.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Plain(Option<&'a str>),
    #[cfg(feature = "tls")]
    Tls(&'a Tls),
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing (with how to install it) or does not start.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start`](Self::start), with the failure returned.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] when `redis-server` is missing (the message says how to
    /// install it), others when it does not answer within 10 seconds, three times.
    pub fn try_start() -> io::Result<Self> {
        Self::start_retrying(Mode::Plain(None))
    }

    /// Starts a server that requires `password` (`requirepass`), if any.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(password: Option<&str>) -> Self {
        Self::start_retrying(Mode::Plain(password)).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts a server that speaks only TLS (`rediss://`), its certificate signed by a CA
    /// made for it ([`ca_pem`](Self::ca_pem)). Needs `openssl` to make the certificates.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), and when `openssl` is missing or fails.
    #[cfg(feature = "tls")]
    pub fn start_tls() -> Self {
        let tls = Tls::generate();
        let mut server = Self::start_retrying(Mode::Tls(&tls)).unwrap_or_else(|why| panic!("{why}"));
        server.tls = Some(tls);
        server
    }

    /// One plain server per process, started on first use, for the tests that only write
    /// under a key prefix of their own. It lives until the process exits (a watchdog kills
    /// it then): never freeze it, and never flush or stop it.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Shared<RedisServer>> = OnceLock::new();
        &SHARED
            .get_or_init(|| {
                let server = Self::start();
                let pid = server.child.id();
                Shared::new(server, &[pid], None)
            })
            .value
    }

    /// As [`shared`](Self::shared), for a TLS-only server ([`start_tls`](Self::start_tls)).
    ///
    /// # Panics
    ///
    /// As [`start_tls`](Self::start_tls).
    #[cfg(feature = "tls")]
    pub fn shared_tls() -> &'static Self {
        static SHARED: OnceLock<Shared<RedisServer>> = OnceLock::new();
        &SHARED
            .get_or_init(|| {
                let server = Self::start_tls();
                let pid = server.child.id();
                let dir = server.tls.as_ref().map(|tls| tls.dir.clone());
                Shared::new(server, &[pid], dir.as_deref())
            })
            .value
    }

    fn start_retrying(mode: Mode<'_>) -> io::Result<Self> {
        // A port found free can be taken by another test's server before ours binds it:
        // then ours exits, and it starts again on another port.
        let mut attempt = 1;
        loop {
            match Self::start_on(free_port(), mode) {
                Ok(server) => return Ok(server),
                Err(why) if attempt < 3 && why.kind() != io::ErrorKind::NotFound => {
                    eprintln!("retrying redis-server on another port: {why}");
                    attempt += 1;
                }
                Err(why) => return Err(why),
            }
        }
    }

    fn start_on(port: u16, mode: Mode<'_>) -> io::Result<Self> {
        let mut command = Command::new("redis-server");
        match mode {
            Mode::Plain(password) => {
                command.args(["--port", &port.to_string()]);
                if let Some(password) = password {
                    command.args(["--requirepass", password]);
                }
            }
            #[cfg(feature = "tls")]
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
            .map_err(|error| match error.kind() {
                io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, MISSING),
                kind => io::Error::new(kind, format!("could not start redis-server: {error}")),
            })?;
        let mut server = Self {
            child,
            port,
            password: match mode {
                Mode::Plain(password) => password.map(str::to_owned),
                #[cfg(feature = "tls")]
                Mode::Tls(_) => None,
            },
            #[cfg(feature = "tls")]
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
        url(self.port, self.password.as_deref(), self.is_tls())
    }

    /// The CA that signed a TLS server's certificate, as PEM.
    ///
    /// # Panics
    ///
    /// When the server was not started with [`start_tls`](Self::start_tls).
    #[cfg(feature = "tls")]
    pub fn ca_pem(&self) -> Vec<u8> {
        self.tls.as_ref().expect("a TLS server").ca.clone()
    }

    /// Stops the process (SIGSTOP): connections stay open but nothing is answered.
    ///
    /// # Panics
    ///
    /// When `kill` fails.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    ///
    /// # Panics
    ///
    /// When `kill` fails.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Kills the server (its data is lost: there is no persistence) and starts a new one
    /// on the same port.
    ///
    /// # Panics
    ///
    /// For a TLS server, and when the new one does not start.
    pub fn restart(&mut self) {
        assert!(!self.is_tls(), "restart is for plain servers");
        self.kill();
        let password = self.password.take();
        *self = Self::start_on(self.port, Mode::Plain(password.as_deref()))
            .unwrap_or_else(|why| panic!("restarting: {why}"));
    }

    /// Sends one command on a fresh plain connection (authenticated first if the server
    /// has a password) and returns the reply as text, arrays flattened one element a line.
    ///
    /// # Errors
    ///
    /// On I/O errors and error replies, and for a TLS server.
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        if self.is_tls() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "command() speaks plain RESP: not for a TLS server",
            ));
        }
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        if let Some(password) = &self.password {
            stream.write_all(&request(&["AUTH", password]))?;
            read_reply(&mut reader)?;
        }
        stream.write_all(&request(args))?;
        read_reply(&mut reader)
    }

    /// The server's counters now. Its byte counters include an `AUTH` per snapshot when
    /// the server has a password: count traffic on servers without one.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub fn counters(&self) -> io::Result<Counters> {
        let stats_info = self.command(&["INFO", "stats"])?;
        let stats = parse_info(&stats_info);
        let commandstats = self.command(&["INFO", "commandstats"])?;
        let commands = parse_info(&commandstats);
        let cpu_info = self.command(&["INFO", "cpu"])?;
        let cpu = parse_info(&cpu_info);
        let seconds = |name: &str| cpu.get(name).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
        let number = |name: &str| stats.get(name).and_then(|value| value.parse().ok()).unwrap_or(0);
        let calls = commands
            .iter()
            .filter_map(|(name, value)| {
                let command = name.strip_prefix("cmdstat_")?;
                let calls = value.split(',').find_map(|part| part.strip_prefix("calls="))?;
                Some((command.to_owned(), calls.parse().ok()?))
            })
            .collect();
        Ok(Counters {
            calls,
            net_input_bytes: number("total_net_input_bytes"),
            net_output_bytes: number("total_net_output_bytes"),
            // The INFO commandstats and cpu exchanges happened after the byte counters were
            // read, and so was the sending of the INFO stats reply.
            own_input_bytes: 2 * REQUEST_FRAMING + "INFOcommandstatsINFOcpu".len() as u64,
            own_output_bytes: bulk_reply_bytes(stats_info.len())
                + bulk_reply_bytes(commandstats.len())
                + bulk_reply_bytes(cpu_info.len()),
            cpu_us: ((seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1e6).round() as u64,
        })
    }

    /// Starts watching every command with `MONITOR`, to tell the commands clients send
    /// (round trips) from those that Lua scripts run. Its output adds to the server's
    /// byte counters: never watch while counting bytes.
    ///
    /// # Errors
    ///
    /// When the server does not answer, and for a server with a password or TLS.
    pub fn monitor(&self) -> io::Result<Monitor> {
        if self.is_tls() || self.password.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "monitor() is for plain servers without a password",
            ));
        }
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"MONITOR\r\n")?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with("+OK") {
            return Err(io::Error::other(format!("MONITOR refused: {line:?}")));
        }
        Ok(Monitor { reader })
    }

    #[cfg(feature = "tls")]
    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    fn is_tls(&self) -> bool {
        false
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

    fn wait_until_ready(&mut self, mode: Mode<'_>) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        // A TLS port answers only a handshake: listening is enough until the check below.
        let up = |port| match mode {
            Mode::Plain(_) => ping(port),
            #[cfg(feature = "tls")]
            Mode::Tls(_) => TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok(),
        };
        while !up(self.port) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(io::Error::other(format!(
                    "redis-server exited with {status} before answering on port {}",
                    self.port
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server did not answer within 10 s on port {}", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whoever answered must be our process, not another test's server on the same port.
        if self.process_id(mode) != Some(self.child.id()) {
            return Err(io::Error::other(format!(
                "port {} is answered by another redis-server",
                self.port
            )));
        }
        Ok(())
    }

    fn process_id(&self, mode: Mode<'_>) -> Option<u32> {
        let client = match mode {
            Mode::Plain(password) => redis::Client::open(url(self.port, password, false)),
            #[cfg(feature = "tls")]
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

/// A `MONITOR` connection ([`RedisServer::monitor`]).
#[derive(Debug)]
pub struct Monitor {
    reader: BufReader<TcpStream>,
}

impl Monitor {
    /// Stops watching: the commands seen so far that clients sent, by name (upper case),
    /// leaving out those run by scripts and the measurement's own.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub fn client_commands(mut self, server: &RedisServer) -> io::Result<BTreeMap<String, u64>> {
        const SENTINEL: &str = "end-of-measurement";
        server.command(&["ECHO", SENTINEL])?;
        let mut commands = BTreeMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "MONITOR closed"));
            }
            if line.contains(SENTINEL) {
                return Ok(commands);
            }
            // +<time> [<db> <client address or "lua">] "<COMMAND>" "<arg>"...
            let Some((source, rest)) = line.split_once(']') else {
                continue;
            };
            if source.ends_with(" lua") {
                continue;
            }
            let name = rest.trim().split('"').nth(1).unwrap_or("").to_uppercase();
            if !OVERHEAD_COMMANDS.contains(&name.to_lowercase().as_str()) {
                *commands.entry(name).or_default() += 1;
            }
        }
    }
}

/// A snapshot of the server's command and traffic counters ([`RedisServer::counters`]).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Calls by command name (lower case).
    pub calls: BTreeMap<String, u64>,
    /// Bytes received from clients.
    pub net_input_bytes: u64,
    /// Bytes sent to clients.
    pub net_output_bytes: u64,
    /// Bytes of this snapshot's own requests that the byte counters above do not include.
    pub own_input_bytes: u64,
    /// Bytes of this snapshot's own replies that the byte counters above do not include.
    pub own_output_bytes: u64,
    /// The server's CPU time so far (user and system, all its threads), in µs.
    pub cpu_us: u64,
}

/// What happened between two snapshots, less the measurement's own traffic.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Session commands (everything but connection set-up and `INFO`), by name.
    pub calls: BTreeMap<String, u64>,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// The server's CPU time (user and system), in µs.
    pub cpu_us: u64,
}

impl Traffic {
    /// The traffic from `before` to `after`.
    pub fn between(before: &Counters, after: &Counters) -> Self {
        let calls = after
            .calls
            .iter()
            .filter(|(name, _)| !OVERHEAD_COMMANDS.contains(&name.as_str()))
            .map(|(name, calls)| (name.clone(), calls - before.calls.get(name).copied().unwrap_or(0)))
            .filter(|(_, calls)| *calls > 0)
            .collect();
        Self {
            calls,
            bytes_in: after
                .net_input_bytes
                .saturating_sub(before.net_input_bytes + before.own_input_bytes + STATS_REQUEST_BYTES),
            bytes_out: after
                .net_output_bytes
                .saturating_sub(before.net_output_bytes + before.own_output_bytes),
            cpu_us: after.cpu_us.saturating_sub(before.cpu_us),
        }
    }

    /// Every session command.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// The commands as `GET×1, SET×1`, per request.
    pub fn describe_per(&self, requests: u64) -> String {
        self.calls
            .iter()
            .map(|(name, calls)| format!("{}×{:.2}", name.to_uppercase(), *calls as f64 / requests.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A TLS server's certificates: a CA of the caller's own, and a certificate for IP
/// 127.0.0.1 that it signed, in a directory removed on drop.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Tls {
    dir: std::path::PathBuf,
    ca: Vec<u8>,
}

#[cfg(feature = "tls")]
impl Tls {
    fn generate() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
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
                io::ErrorKind::NotFound => panic!(
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

#[cfg(feature = "tls")]
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

/// A RESP request of `args`.
fn request(args: &[&str]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    request.into_bytes()
}

fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

/// Reads one RESP2 reply; arrays are flattened, one element a line.
fn read_reply(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).unwrap_or(("", ""));
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {line:?}"));
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Err(io::Error::other(format!("redis error: {rest}"))),
        "$" => {
            let Ok(len) = rest.parse::<usize>() else {
                return Ok(String::new()); // $-1: nil
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|_| invalid("non-UTF-8 reply"))
        }
        "*" => {
            let count = rest.parse::<i64>().map_err(|_| invalid("bad array"))?;
            let items = (0..count.max(0))
                .map(|_| read_reply(reader))
                .collect::<io::Result<Vec<_>>>()?;
            Ok(items.join("\n"))
        }
        _ => Err(invalid("unexpected reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_leaves_out_the_measurement() {
        let mut before = Counters::default();
        before.calls.insert("get".into(), 5);
        before.calls.insert("info".into(), 2);
        let mut after = before.clone();
        after.calls.insert("get".into(), 15);
        after.calls.insert("set".into(), 10);
        after.calls.insert("info".into(), 4);
        after.net_input_bytes = 1000;
        before.cpu_us = 70;
        after.cpu_us = 1070;
        let traffic = Traffic::between(&before, &after);
        assert_eq!(traffic.cpu_us, 1000);
        assert_eq!(traffic.total_calls(), 20);
        assert_eq!(traffic.describe_per(10), "GET×1.00, SET×1.00");
        assert_eq!(traffic.bytes_in, 1000 - STATS_REQUEST_BYTES);
    }

    #[test]
    fn replies_parse() {
        let mut input = &b"*2\r\n$3\r\nabc\r\n:7\r\n"[..];
        assert_eq!(read_reply(&mut input).unwrap(), "abc\n7");
        let mut input = &b"-ERR nope\r\n"[..];
        assert!(read_reply(&mut input).is_err());
    }

    #[test]
    fn requests_are_resp_arrays() {
        assert_eq!(request(&["INFO", "stats"]), b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n");
    }

    #[test]
    fn a_server_answers_counts_and_dies_on_drop() {
        let server = RedisServer::start();
        assert_ne!(server.port(), 6379);
        assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
        assert_eq!(server.command(&["SET", "k", "v"]).unwrap(), "OK");
        assert!(
            server
                .counters()
                .unwrap()
                .calls
                .get("set")
                .is_some_and(|calls| *calls >= 1)
        );
        let port = server.port();
        drop(server);
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "killed on drop"
        );
    }

    #[test]
    fn back_to_back_snapshots_measure_nothing_and_cpu_counts_the_work_between() {
        let server = RedisServer::start();
        let before = server.counters().unwrap();
        let quiet = Traffic::between(&before, &server.counters().unwrap());
        assert_eq!((quiet.total_calls(), quiet.bytes_in, quiet.bytes_out), (0, 0, 0));
        let before = server.counters().unwrap();
        server
            .command(&["EVAL", "for i = 1, 3000000 do end return 1", "0"])
            .unwrap();
        let busy = Traffic::between(&before, &server.counters().unwrap());
        assert!(busy.cpu_us > quiet.cpu_us + 1_000, "{busy:?} against {quiet:?}");
    }

    #[test]
    fn a_password_server_authenticates_its_own_commands() {
        let server = RedisServer::start_with_password(Some("secret"));
        assert!(server.url().contains(":secret@"));
        assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_tls_server_has_a_rediss_url_and_its_ca() {
        let server = RedisServer::start_tls();
        assert!(server.url().starts_with("rediss://127.0.0.1:"));
        assert!(server.ca_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            server.command(&["PING"]).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
    }

    #[test]
    fn the_shared_server_is_one() {
        assert_eq!(RedisServer::shared().port(), RedisServer::shared().port());
        assert_eq!(RedisServer::shared().command(&["PING"]).unwrap(), "PONG");
    }
}
