//! A Redis Cluster of the caller's own: 3 primaries with 1 replica each, on free loopback
//! ports (each with its cluster bus port, port + 10000, free too), killed on drop.
//!
//! Never the default port 6379: a system Redis may run there.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::watchdog::{DEFAULT_PORT, Shared};

const MISSING: &str = "redis-server and redis-cli not found: install them with `apt-get install redis-server` (Debian/Ubuntu; it ships redis-cli too)";
/// Shorter than the default 15 s so a failover takes seconds, long enough that a loaded
/// machine does not fail nodes over by mistake.
const NODE_TIMEOUT_MS: u64 = 2000;

#[derive(Debug)]
struct Process {
    child: Child,
    port: u16,
}

/// A running 6-node Redis Cluster without persistence, its nodes killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Process>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts 6 nodes, creates the cluster (3 primaries, 1 replica each) and waits until
    /// every node reports `cluster_state:ok` and every replica is in sync.
    pub fn start() -> Self {
        // A port found free can be taken by another test before the node binds it: then
        // the node exits, and the cluster is started again on other ports.
        for attempt in 1.. {
            match Self::start_nodes() {
                Ok(cluster) => return cluster.create(),
                Err(why) if attempt < 3 => eprintln!("retrying the cluster on other ports: {why}"),
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    /// One cluster per process, started on first use, for the tests that only write under
    /// a key prefix of their own: starting a cluster takes seconds. It lives until the
    /// process exits (a watchdog kills its nodes then); being shared, it cannot be changed
    /// ([`kill`](Self::kill) needs a cluster of one's own).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Shared<RedisCluster>> = OnceLock::new();
        &SHARED
            .get_or_init(|| {
                let cluster = Self::start();
                let pids: Vec<u32> = cluster.nodes.iter().map(|node| node.child.id()).collect();
                let dir = cluster.dir.clone();
                Shared::new(cluster, &pids, Some(&dir))
            })
            .value
    }

    fn start_nodes() -> Result<Self, String> {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "session-cluster-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let mut cluster = Self { nodes: Vec::new(), dir };
        for port in free_ports(6) {
            let child = spawn_node(port, &cluster.dir);
            cluster.nodes.push(Process { child, port });
        }
        for node in &mut cluster.nodes {
            wait_until_answering(node)?;
        }
        Ok(cluster)
    }

    /// `redis-cli --cluster create` over the started nodes, then waits until healthy.
    fn create(self) -> Self {
        let cluster = self;
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| match error.kind() {
                std::io::ErrorKind::NotFound => panic!("{MISSING}"),
                _ => panic!("could not run redis-cli: {error}"),
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_healthy(Duration::from_secs(30));
        cluster
    }

    /// The `redis://` URL of every live node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| url(node.port)).collect()
    }

    /// The ports of the primaries that hold slots, as a live node sees them.
    pub fn primaries(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.cluster_nodes().lines().filter_map(primary_port).collect();
        ports.sort_unstable();
        ports
    }

    /// The port of a replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let text = self.cluster_nodes();
        let id = text
            .lines()
            .find(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.starts_with(&format!("127.0.0.1:{primary}@")))
            })
            .and_then(|line| line.split_whitespace().next())
            .expect("the primary is listed")
            .to_owned();
        text.lines()
            .find(|line| {
                let parts: Vec<&str> = line.split_whitespace().collect();
                parts.get(2).is_some_and(|flags| flags.contains("slave")) && parts.get(3) == Some(&id.as_str())
            })
            .and_then(|line| port_of(line.split_whitespace().nth(1)?))
            .expect("the primary has a replica")
    }

    /// Kills the node on `port` (SIGKILL: no goodbye to its clients or the cluster).
    pub fn kill(&mut self, port: u16) {
        let index = self
            .nodes
            .iter()
            .position(|node| node.port == port)
            .expect("a node of this cluster");
        let mut node = self.nodes.remove(index);
        let _ = node.child.kill();
        let _ = node.child.wait();
    }

    /// Waits until every replica has received everything its primary has written.
    pub fn wait_replicated(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for primary in self.primaries() {
            loop {
                let info = query(primary, &["INFO", "replication"]).unwrap_or_default();
                let offset = field(&info, "master_repl_offset").and_then(|v| v.parse::<u64>().ok());
                let replicas: Vec<u64> = info
                    .lines()
                    .filter(|line| line.starts_with("slave") && line.contains("offset="))
                    .filter_map(|line| line.split("offset=").nth(1)?.split(',').next()?.parse().ok())
                    .collect();
                if offset.is_some() && !replicas.is_empty() && replicas.iter().all(|r| Some(*r) == offset) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replicas of {primary} not in sync within {timeout:?}: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits until the live nodes agree the cluster is healthy: `cluster_state:ok`, all
    /// slots served, three primaries, each replica linked to its primary.
    pub fn wait_until_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.health() {
                Ok(()) => return,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "cluster not healthy within {timeout:?}: {why}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn health(&self) -> Result<(), String> {
        for node in &self.nodes {
            let info = query(node.port, &["CLUSTER", "INFO"]).map_err(|e| format!("{}: {e}", node.port))?;
            if field(&info, "cluster_state") != Some("ok") || field(&info, "cluster_slots_ok") != Some("16384") {
                return Err(format!("{}: {info}", node.port));
            }
            let replication = query(node.port, &["INFO", "replication"]).map_err(|e| format!("{}: {e}", node.port))?;
            if field(&replication, "role") == Some("slave") && field(&replication, "master_link_status") != Some("up") {
                return Err(format!("{}: replica link down", node.port));
            }
        }
        let primaries = self.primaries();
        if primaries.len() != 3 {
            return Err(format!("primaries {primaries:?}"));
        }
        // `cluster_state:ok` does not mean the gossip has settled: a client that reads an
        // unsettled view can be redirected in circles. Every node must know every node, be
        // linked to it, and see the same owner for every slot.
        let mut views = Vec::new();
        for node in &self.nodes {
            let text = query(node.port, &["CLUSTER", "NODES"]).map_err(|e| format!("{}: {e}", node.port))?;
            let live: Vec<u16> = self.nodes.iter().map(|node| node.port).collect();
            views.push(settled_view(&text, &live).map_err(|why| format!("{}: {why}", node.port))?);
        }
        if views.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(format!("the nodes disagree on the topology: {views:?}"));
        }
        Ok(())
    }

    fn cluster_nodes(&self) -> String {
        self.nodes
            .iter()
            .find_map(|node| query(node.port, &["CLUSTER", "NODES"]).ok())
            .expect("a live node answers CLUSTER NODES")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The nodes' own account of a failed test: failovers, crashes, lost links.
            for node in &self.nodes {
                let log = std::fs::read_to_string(log_path(&self.dir, node.port)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- redis-server on port {} (last lines of its log) ---", node.port);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for node in &mut self.nodes {
            let _ = node.child.kill();
        }
        for node in &mut self.nodes {
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn log_path(dir: &std::path::Path, port: u16) -> PathBuf {
    dir.join(format!("node-{port}.log"))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

fn spawn_node(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args([
            "--cluster-config-file",
            &dir.join(format!("nodes-{port}.conf")).to_string_lossy(),
        ])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .args(["--dir", &dir.to_string_lossy()])
        .args(["--logfile", &log_path(dir, port).to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| match error.kind() {
            std::io::ErrorKind::NotFound => panic!("{MISSING}"),
            _ => panic!("could not start redis-server: {error}"),
        })
}

fn wait_until_answering(node: &mut Process) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while query(node.port, &["PING"]).is_err() {
        if let Ok(Some(status)) = node.child.try_wait() {
            return Err(format!(
                "redis-server exited with {status} before answering on port {}",
                node.port
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("redis-server did not answer within 10 s on port {}", node.port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A node that lost its port to another test's server exits, and that server answers.
    let info = query(node.port, &["INFO", "server"]).map_err(|e| format!("port {}: {e}", node.port))?;
    if field(&info, "process_id") != Some(node.child.id().to_string().as_str()) {
        return Err(format!("port {} is answered by another redis-server", node.port));
    }
    Ok(())
}

/// `count` ports below 55535, never 6379, whose cluster bus ports (+10000) are free too.
/// Held open while searching, so one search never returns the same port twice.
fn free_ports(count: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        if (1024..55_535).contains(&port)
            && port != DEFAULT_PORT
            && let Ok(bus) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000))
        {
            ports.push(port);
            held.push(bus);
        }
        held.push(listener);
    }
    ports
}

/// One command to the node on `port`, on a fresh connection, as text.
///
/// # Errors
///
/// When the node cannot be reached, or refuses the command.
pub fn query(port: u16, args: &[&str]) -> redis::RedisResult<String> {
    let client = redis::Client::open(url(port))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let value: redis::Value = cmd.query(&mut connection)?;
    Ok(match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::SimpleString(text) | redis::Value::VerbatimString { text, .. } => text,
        redis::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
}

fn port_of(address: &str) -> Option<u16> {
    address.split(['@', ',']).next()?.rsplit_once(':')?.1.parse().ok()
}

/// One node's `CLUSTER NODES` as sorted `address role slots` lines of the `live` nodes, if
/// it knows each of them, linked, none in a handshake, without an address or suspected of
/// failure, and holds every killed node as failed.
fn settled_view(text: &str, live: &[u16]) -> Result<Vec<String>, String> {
    let mut view = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags), Some(link)) = (parts.get(1), parts.get(2), parts.get(7)) else {
            return Err(format!("unreadable line {line:?}"));
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !port_of(address).is_some_and(|port| live.contains(&port)) {
            if !flags.contains(&"fail") {
                return Err(format!("a killed node not yet failed: {line}"));
            }
            continue;
        }
        if flags
            .iter()
            .any(|flag| matches!(*flag, "handshake" | "noaddr" | "fail" | "fail?"))
            || *link != "connected"
        {
            return Err(format!("not settled: {line}"));
        }
        let role = if flags.contains(&"master") {
            "primary"
        } else {
            "replica"
        };
        let address = address.split('@').next().unwrap_or(address);
        view.push(format!("{address} {role} {}", parts[8..].join(" ")));
    }
    if view.len() != live.len() {
        return Err(format!("knows {} of the {} live nodes", view.len(), live.len()));
    }
    view.sort();
    Ok(view)
}

/// The port of a `CLUSTER NODES` line that is a primary serving slots.
fn primary_port(line: &str) -> Option<u16> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let flags = parts.get(2)?;
    let serving = flags.contains("master") && !flags.split(',').any(|f| f == "fail" || f == "fail?") && parts.len() > 8;
    if !serving {
        return None;
    }
    port_of(parts.get(1)?)
}
