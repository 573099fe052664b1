//! A private `redis-server` on a free loopback port, and the counters the report reads
//! from it (`INFO commandstats`, `INFO stats`).

use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufReader, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Commands that the measurement itself sends, or that clients send once per connection:
/// left out of the per-request counts.
const OVERHEAD_COMMANDS: [&str; 7] = ["info", "config", "client", "hello", "ping", "select", "flushall"];

/// RESP framing of a two-argument request: `*2`, two `$n` lines, five CRLFs.
const REQUEST_FRAMING: u64 = 18;
/// The `INFO stats` request of the closing snapshot, counted before its counters are read.
const STATS_REQUEST_BYTES: u64 = REQUEST_FRAMING + 9;
/// RESP framing of a bulk reply of a few kilobytes: `$nnnn` and two CRLFs.
const REPLY_FRAMING: u64 = 9;

/// A `redis-server` child process, killed on drop. Never on the default port.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free port of 127.0.0.1 and waits
    /// until it answers.
    ///
    /// # Errors
    ///
    /// When `redis-server` is missing (install it with `apt-get install redis-server`) or
    /// does not answer within 10 seconds.
    pub fn start() -> io::Result<Self> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                io::Error::new(error.kind(), format!("cannot start redis-server ({error}): install it"))
            })?;
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.command(&["PING"]).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "redis-server did not answer"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one command on a fresh connection and returns the reply as text.
    ///
    /// # Errors
    ///
    /// On I/O errors and error replies.
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        read_reply(&mut BufReader::new(stream))
    }

    /// The server's counters now.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub fn counters(&self) -> io::Result<Counters> {
        let stats = parse_info(&self.command(&["INFO", "stats"])?);
        let commandstats = self.command(&["INFO", "commandstats"])?;
        let commands = parse_info(&commandstats);
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
            // The INFO commandstats exchange happened after the byte counters were read.
            own_input_bytes: REQUEST_FRAMING + "INFOcommandstats".len() as u64,
            own_output_bytes: REPLY_FRAMING + commandstats.len() as u64,
        })
    }
}

impl RedisServer {
    /// Starts watching every command with `MONITOR`, to tell the commands clients send
    /// (round trips) from those that Lua scripts run. Its output adds to the server's
    /// byte counters: never watch while counting bytes.
    ///
    /// # Errors
    ///
    /// When the server does not answer.
    pub fn monitor(&self) -> io::Result<Monitor> {
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
}

/// A `MONITOR` connection.
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A snapshot of the server's command and traffic counters.
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

fn free_port() -> io::Result<u16> {
    // Ask the kernel for a free port; never 6379, whatever it says.
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if port != 6379 {
            return Ok(port);
        }
    }
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
        let traffic = Traffic::between(&before, &after);
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
}
