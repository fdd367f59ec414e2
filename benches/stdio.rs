//! End-to-end stdio latency of the real `mesh-mcp` binary, driven by a raw JSON-RPC client.
//!
//! `cargo bench --bench stdio` (release profile). Cargo builds the `mesh-mcp` binary for the
//! bench and hands its path over as `CARGO_BIN_EXE_mesh-mcp`; `MESH_BENCH_BIN` overrides it.
//! Results and their reading: BENCHMARKS.md.
//!
//! The client is deliberately dumb: it writes one newline-delimited JSON-RPC request to the
//! child's stdin with a single `write`, reads stdout lines with a `BufReader` until the line
//! whose `id` matches, and times that round trip with `Instant`. Request lines are formatted
//! before the clock starts and responses are parsed and checked after it stops, so the numbers
//! are the server's round trip plus two pipe hops, not client JSON work. No SDK on the client.
//!
//! What runs, all in one process tree and one run:
//! - floors: a bare pipe round trip (`cat` echoing a request-sized line); a 4 KiB overwrite +
//!   `fdatasync` in the database directory (no durable commit can beat it on this disk); bare
//!   SQLite in this process, opened as the server opens its file (WAL, `synchronous=NORMAL`): a
//!   read transaction of one key and a commit of one row, what any read or write of the store
//!   pays before the engine does anything; an
//!   rmcp 3.9 server with one `#[tool]` that does nothing and one that answers with
//!   `swarm_status`'s result in the bench's swarm, encoded as mesh-mcp encodes it (what rmcp and
//!   the pipes cost for an answer of that size), on the multi-thread and on the
//!   current-thread runtime, over `stdio_pipes()` and over `stdio()`. That server is this very
//!   binary re-executed with `MESH_BENCH_NOOP=<mode>`, so no extra target is needed and it is
//!   built with the same profile, rmcp version and features as the real server;
//! - `mesh-mcp serve` on a SQLite file (default durability, current-thread: the main variant),
//!   with `--durability power`, with `--multi-thread`, with `MESH_LOG_LEVEL=debug`, with
//!   `MESH_METRICS=off` (the cost of recording metrics), and on `:memory:` (current- and
//!   multi-thread);
//! - the same ops called in-process through `mesh_mcp::server::tools::call` (no JSON-RPC, rmcp or
//!   pipes): the engine's own share of each round trip;
//! - cold starts (spawn -> initialize reply) and RSS (VmRSS after initialize, and after the run).
//!
//! All servers stay up for the whole run and every variant is measured in several passes, one
//! chunk per pass and mode, so that a slow spell of this shared, virtualized machine hits every
//! variant alike: compare variants by the ratios of one run, not across runs. Each chunk runs in
//! two modes: `pinned` (the bench and every server on CPU 0, so each hop of a round trip is a
//! same-CPU context switch: the software's own cost, stable from run to run) and `natural` (as
//! the OS schedules them; on this VM a wake-up across vCPUs goes through the hypervisor and costs
//! tens of microseconds, so the pipe floor itself swings from 6 to 300 us between passes).
//!
//! Knobs (environment): `MESH_BENCH_N` recorded calls per op for the main variant and the floors
//! (default 5000), `MESH_BENCH_N_SIDE` for the other variants (2000), `MESH_BENCH_WARMUP`
//! unrecorded calls per variant and mode (200, spread over the passes), `MESH_BENCH_PASSES` (5),
//! `MESH_BENCH_MODES` (`pinned,natural`), `MESH_BENCH_COLD` cold starts per case and mode (20),
//! `MESH_BENCH_DIR` where databases go (the temp dir), `MESH_BENCH_BIN` the server binary,
//! `MESH_BENCH_FILTER` only the variants whose label contains it, `MESH_BENCH_ORDER=blocks` each
//! op in its own loop instead of one round of all six ops at a time, `MESH_BENCH_GAP_US` a pause
//! before each timed call. Without `--bench` (`cargo test --benches`) it is a smoke test with tiny
//! counts, natural mode only.
//!
//! Output: markdown tables on stdout; progress on stderr.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NOOP_ENV: &str = "MESH_BENCH_NOOP";
/// The result the do-nothing server's `sized` tool answers with (`swarm_status`'s, as JSON).
const NOOP_RESULT_ENV: &str = "MESH_BENCH_NOOP_RESULT";
/// The do-nothing server's two ops.
const NOOP_OPS: [&str; 2] = ["tools/call noop", "tools/call status-sized"];
const PROTOCOL_VERSION: &str = "2025-06-18";
const MAIN: &str = "mesh-mcp sqlite, current-thr";

/// Where the processes may run while a chunk is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// The bench and every server pinned to CPU 0 (`taskset`): each hop of a round trip is a
    /// context switch on one CPU. On this VM a wake-up across vCPUs costs an inter-processor
    /// interrupt through the hypervisor (and a halted vCPU must be woken), which swamps the
    /// software being measured; pinned, the pipe floor matches bare metal and runs are stable.
    Pinned,
    /// As the OS schedules them, on every CPU: what a client on this machine sees.
    Natural,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pinned => "pinned",
            Mode::Natural => "natural",
        }
    }
}

fn main() {
    if let Ok(mode) = std::env::var(NOOP_ENV) {
        noop::serve(&mode);
        return;
    }
    // The in-process engine and the SQLite floor with the allocator settings the server runs with.
    mesh_mcp::alloc::tune();
    let cfg = Config::from_env();
    let tmp = tempfile::Builder::new()
        .prefix("mesh-bench-")
        .tempdir_in(&cfg.dir)
        .expect("create a temp dir for the bench databases");
    run(&cfg, tmp.path());
}

// ---------------------------------------------------------------------------------------------
// Configuration

struct Config {
    bin: PathBuf,
    me: PathBuf,
    dir: PathBuf,
    n: usize,
    n_side: usize,
    warmup: usize,
    passes: usize,
    cold: usize,
    smoke: bool,
    /// Only the variants whose label contains this.
    filter: Option<String>,
    /// Each op in its own loop instead of interleaving the six ops round by round.
    blocks: bool,
    /// Pause before each timed call (outside the timing).
    gap: Duration,
    modes: Vec<Mode>,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Self {
        // `cargo bench` passes `--bench`; `cargo test --benches` does not: then smoke-test only.
        let smoke = !std::env::args().any(|a| a == "--bench");
        let bin = std::env::var_os("MESH_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mesh-mcp")));
        if !bin.is_file() {
            eprintln!(
                "stdio bench: the server binary {} is missing.\n  Build it with `cargo build --release --bin mesh-mcp` \
                 (cargo bench normally does this itself), or point MESH_BENCH_BIN at one.",
                bin.display()
            );
            std::process::exit(2);
        }
        let (n, n_side, warmup, passes, cold) = if smoke { (20, 20, 5, 2, 2) } else { (5000, 2000, 200, 5, 20) };
        Config {
            bin,
            me: std::env::current_exe().expect("path of the bench binary"),
            dir: std::env::var_os("MESH_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir),
            n: env_usize("MESH_BENCH_N", n),
            n_side: env_usize("MESH_BENCH_N_SIDE", n_side),
            warmup: env_usize("MESH_BENCH_WARMUP", warmup),
            passes: env_usize("MESH_BENCH_PASSES", passes).max(1),
            cold: env_usize("MESH_BENCH_COLD", cold),
            smoke,
            filter: std::env::var("MESH_BENCH_FILTER").ok().filter(|f| !f.is_empty()),
            blocks: std::env::var("MESH_BENCH_ORDER").is_ok_and(|v| v == "blocks"),
            gap: Duration::from_micros(env_usize("MESH_BENCH_GAP_US", 0) as u64),
            // The smoke test needs no `taskset`.
            modes: std::env::var("MESH_BENCH_MODES")
                .unwrap_or_else(|_| if smoke { "natural".into() } else { "pinned,natural".into() })
                .split(',')
                .map(|m| match m.trim() {
                    "pinned" => Mode::Pinned,
                    "natural" => Mode::Natural,
                    other => panic!("MESH_BENCH_MODES: unknown mode {other} (pinned, natural)"),
                })
                .collect(),
        }
    }

    fn selected(&self, label: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| label.contains(f))
    }
}

// ---------------------------------------------------------------------------------------------
// The raw JSON-RPC client

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
    what: String,
    stderr_path: Option<PathBuf>,
}

impl Client {
    /// Spawn `cmd` with piped stdin/stdout; stderr goes to `stderr_path` (or nowhere).
    fn spawn(mut cmd: Command, what: &str, stderr_path: Option<&Path>) -> Self {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        match stderr_path {
            Some(p) => cmd.stderr(File::create(p).expect("create the child's stderr log")),
            None => cmd.stderr(Stdio::null()),
        };
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let stdin = child.stdin.take();
        let out = BufReader::with_capacity(64 * 1024, child.stdout.take().expect("piped stdout"));
        Client {
            child,
            stdin,
            out,
            line: String::with_capacity(64 * 1024),
            next_id: 1,
            what: what.to_string(),
            stderr_path: stderr_path.map(Path::to_path_buf),
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn die(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let log = self.stderr_path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        panic!("{}: {why}\n--- stderr tail ---\n{tail}", self.what);
    }

    fn write(&mut self, line: &str) {
        // One write() of the whole line: ChildStdin is unbuffered.
        if let Err(e) = self.stdin.as_mut().expect("stdin open").write_all(line.as_bytes()) {
            self.die(&format!("writing a request: {e}"));
        }
    }

    /// Write `req` (a whole line) and wait for the reply with `id`. Timed from just before the
    /// write to just after the matching line was read; lines for other ids (notifications, if
    /// any) count toward it, as they delay the reply.
    fn round_trip(&mut self, req: &str, id: u64) -> (Duration, Value) {
        let t0 = Instant::now();
        self.write(req);
        loop {
            self.line.clear();
            let n = match self.out.read_line(&mut self.line) {
                Ok(n) => n,
                Err(e) => self.die(&format!("reading a reply: {e}")),
            };
            let t1 = Instant::now();
            if n == 0 {
                self.die("closed stdout before replying");
            }
            let v: Value = match serde_json::from_str(&self.line) {
                Ok(v) => v,
                Err(e) => {
                    let l = self.line.clone();
                    self.die(&format!("non-JSON line on stdout ({e}): {l}"))
                }
            };
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                return (t1 - t0, v);
            }
        }
    }

    fn initialize(&mut self) -> Duration {
        let id = self.id();
        let params = json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "raw-bench", "version": "0"}});
        let req = format!("{}\n", json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": params}));
        let (d, v) = self.round_trip(&req, id);
        if v.get("result").is_none() {
            self.die(&format!("initialize failed: {v}"));
        }
        self.write("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
        d
    }

    /// A `tools/call` request line and its id.
    fn call_line(&mut self, tool: &str, args: &Value) -> (String, u64) {
        let id = self.id();
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"{tool}\",\"arguments\":{args}}}}}\n"
        );
        (line, id)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Close stdin (the server exits on EOF) and reap the child.
    fn close(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}

/// Something that calls a mesh-mcp tool: the stdio client, or the engine in-process.
trait Caller {
    /// The round trip and the tool's JSON result (`content[0].text` parsed). A tool error aborts
    /// the bench: every timed call must be a success.
    fn call(&mut self, tool: &str, args: &Value) -> (Duration, Value);
    fn die(&mut self, why: &str) -> !;
}

impl Caller for Client {
    fn call(&mut self, tool: &str, args: &Value) -> (Duration, Value) {
        let (line, id) = self.call_line(tool, args);
        let (d, v) = self.round_trip(&line, id);
        if let Some(err) = v.get("error") {
            self.die(&format!("{tool} failed: {err}"));
        }
        let result = &v["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or("");
        if result["isError"].as_bool() == Some(true) {
            self.die(&format!("{tool} {args} returned a tool error: {text}"));
        }
        (d, serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
    }

    fn die(&mut self, why: &str) -> ! {
        Client::die(self, why)
    }
}

/// The engine called through the tool table (`mesh_mcp::server::tools::call`) on a
/// current-thread runtime: the server's own work for an op, without JSON-RPC, rmcp or pipes.
struct InProcess {
    rt: tokio::runtime::Runtime,
    engine: mesh_mcp::mesh::Engine,
}

impl Caller for InProcess {
    fn call(&mut self, tool: &str, args: &Value) -> (Duration, Value) {
        let args = args.clone();
        let t0 = Instant::now();
        let result = self.rt.block_on(mesh_mcp::server::tools::call(&self.engine, tool, args));
        let d = t0.elapsed();
        match result {
            Some(Ok(json)) => (d, serde_json::from_str(&json).expect("tool results are JSON")),
            Some(Err(e)) => self.die(&format!("{tool} failed: {e}")),
            None => self.die(&format!("no tool {tool}")),
        }
    }

    fn die(&mut self, why: &str) -> ! {
        panic!("in-process engine: {why}")
    }
}

// ---------------------------------------------------------------------------------------------
// The mesh workload

const OPS: [&str; 6] = [
    "memory_usage retrieve",
    "memory_usage store",
    "swarm_status",
    "daa_communication send",
    "daa_communication receive",
    "daa_communication ack",
];

/// A swarm with two agents and a stored entry, and the prepared arguments of the six ops.
struct Mesh {
    retrieve: Value,
    status: Value,
    receive: Value,
    value: String,
    lead: (String, String),
    dev: (String, String),
    /// The message sent by the last `send`, for `receive` to check and `ack` to remove.
    last_message: String,
    /// Rounds run so far (store keys and message bodies vary with it).
    round: usize,
}

impl Mesh {
    fn setup(c: &mut impl Caller) -> Self {
        // heartbeatInterval/messageTimeout: nobody heartbeats during the bench, and an agent
        // that went failed would make every send fail.
        let (_, swarm) = c.call(
            "swarm_init",
            &json!({"topology": "mesh", "swarmId": "bench", "heartbeatInterval": 3600, "messageTimeout": 7200}),
        );
        // A stdio session keeps the owner token itself; the engine called in-process needs it passed.
        let owner = &swarm["ownerToken"];
        let (_, lead) = c.call("agent_spawn", &json!({"type": "coordinator", "name": "lead", "ownerToken": owner}));
        let (_, dev) = c.call("agent_spawn", &json!({"type": "coder", "name": "dev", "ownerToken": owner}));
        let pair = |a: &Value| {
            let f = |k: &str| a[k].as_str().unwrap_or_else(|| panic!("agent_spawn result lacks {k}: {a}")).to_string();
            (f("agentId"), f("agentToken"))
        };
        let (lead, dev) = (pair(&lead), pair(&dev));
        let value = "v".repeat(100);
        c.call("memory_usage", &json!({"action": "store", "key": "hot", "value": value, "namespace": "bench"}));
        Mesh {
            retrieve: json!({"action": "retrieve", "key": "hot", "namespace": "bench"}),
            status: json!({}),
            receive: json!({"action": "receive", "agentId": dev.0, "agentToken": dev.1, "limit": 1}),
            value,
            lead,
            dev,
            last_message: String::new(),
            round: 0,
        }
    }

    /// Run op `k` once.
    fn op(&mut self, c: &mut impl Caller, k: usize) -> Duration {
        let i = self.round;
        match k {
            // retrieve: a 100-byte entry that exists.
            0 => {
                let (d, r) = c.call("memory_usage", &self.retrieve);
                if r["found"] != true {
                    c.die(&format!("retrieve found nothing: {r}"));
                }
                d
            }
            // store: 100 bytes under one of 100 keys (updates after the first 100).
            1 => {
                let store = json!({"action": "store", "key": format!("k{}", i % 100), "value": self.value, "namespace": "bench"});
                c.call("memory_usage", &store).0
            }
            // status of the default swarm (2 agents, 1 link).
            2 => c.call("swarm_status", &self.status).0,
            // send lead -> dev (by agent id, with lead's token).
            3 => {
                let send = json!({"from": self.lead.0, "to": self.dev.0, "message": {"task": "bench", "i": i}, "agentToken": self.lead.1});
                let (d, s) = c.call("daa_communication", &send);
                self.last_message =
                    s["delivered"][0]["messageId"].as_str().expect("send delivered a message").to_string();
                d
            }
            // dev receives with limit 1 from a mailbox that holds exactly the message just sent.
            4 => {
                let (d, r) = c.call("daa_communication", &self.receive);
                if r["messages"][0]["messageId"].as_str() != Some(self.last_message.as_str()) {
                    c.die(&format!("receive did not return the message just sent: {r}"));
                }
                d
            }
            // dev acks it: the mailbox is empty again for the next round.
            _ => {
                let ack = json!({"action": "ack", "agentId": self.dev.0, "agentToken": self.dev.1, "messageIds": [self.last_message]});
                c.call("daa_communication", &ack).0
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Variants and their chunks

enum Driver {
    Stdio(Client),
    InProcess(InProcess),
}

// A dozen of these live for the whole run: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Pipe(Client),
    Disk(File),
    /// Bare SQLite in this process, WAL and `synchronous=NORMAL` as the server opens it: a read
    /// transaction of one key (op 0) and a commit of one small row (op 1).
    Sqlite(rusqlite::Connection),
    Noop(Client),
    Mesh(Driver, Mesh),
}

struct Target {
    label: String,
    kind: Kind,
    /// Recorded calls wanted per op.
    n: usize,
    ops: Vec<String>,
    /// Per mode (`Mode as usize`), per op.
    samples: [Vec<Vec<Duration>>; 2],
    /// Per mode, samples[mode][0].len() at the end of each pass.
    pass_ends: [Vec<usize>; 2],
    idle_rss_kib: Option<u64>,
}

impl Target {
    fn new(label: &str, kind: Kind, n: usize, ops: &[&str], idle_rss_kib: Option<u64>) -> Self {
        Target {
            label: label.to_string(),
            kind,
            n,
            ops: ops.iter().map(|s| s.to_string()).collect(),
            samples: [
                ops.iter().map(|_| Vec::with_capacity(n)).collect(),
                ops.iter().map(|_| Vec::with_capacity(n)).collect(),
            ],
            pass_ends: [Vec::new(), Vec::new()],
            idle_rss_kib,
        }
    }

    fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Pipe(c) | Kind::Noop(c) | Kind::Mesh(Driver::Stdio(c), _) => Some(c.child.id()),
            _ => None,
        }
    }

    fn rss_kib(&self) -> Option<u64> {
        match &self.kind {
            Kind::Noop(c) | Kind::Mesh(Driver::Stdio(c), _) => Some(c.rss_kib()),
            _ => None,
        }
    }

    /// Run `warm` unrecorded then `count` recorded iterations.
    fn chunk(&mut self, cfg: &Config, mode: Mode, warm: usize, count: usize) {
        let Target { kind, samples, .. } = self;
        let samples = &mut samples[mode as usize];
        let done = samples[0].len();
        let pause = || {
            if !cfg.gap.is_zero() {
                std::thread::sleep(cfg.gap)
            }
        };
        match kind {
            Kind::Pipe(c) => {
                for i in 0..warm + count {
                    // A request-shaped line as long as a memory_usage retrieve call.
                    let id = c.id();
                    let head =
                        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"pad\":\"");
                    let req = format!("{head}{}\"}}}}\n", "x".repeat(RETRIEVE_LINE_LEN.saturating_sub(head.len() + 4)));
                    pause();
                    let (d, _) = c.round_trip(&req, id);
                    if i >= warm {
                        samples[0].push(d);
                    }
                }
            }
            Kind::Disk(f) => {
                let page = [7u8; 4096];
                for i in 0..warm + count {
                    let off = (done + i) as u64 % (DISK_SPAN / 4096) * 4096;
                    pause();
                    let t0 = Instant::now();
                    f.write_all_at(&page, off).expect("write the fsync probe");
                    f.sync_data().expect("fdatasync the fsync probe");
                    if i >= warm {
                        samples[0].push(t0.elapsed());
                    }
                }
            }
            Kind::Sqlite(conn) => {
                for i in 0..warm + count {
                    pause();
                    let (read, commit) = sqlite_floor(conn, done + i);
                    if i >= warm {
                        samples[0].push(read);
                        samples[1].push(commit);
                    }
                }
            }
            Kind::Noop(c) => {
                let args = json!({});
                for i in 0..warm + count {
                    for (k, tool) in ["noop", "sized"].into_iter().enumerate() {
                        pause();
                        let (d, _) = c.call(tool, &args);
                        if i >= warm {
                            samples[k].push(d);
                        }
                    }
                }
            }
            Kind::Mesh(driver, mesh) => {
                // Interleaved (default): each round runs the six ops in turn. Blocks: each op in
                // its own loop (send/receive/ack stay one cycle, as receive needs the send).
                let phases: &[&[usize]] =
                    if cfg.blocks { &[&[0], &[1], &[2], &[3, 4, 5]] } else { &[&[0, 1, 2, 3, 4, 5]] };
                for phase in phases {
                    for i in 0..warm + count {
                        for &k in *phase {
                            pause();
                            let d = match driver {
                                Driver::Stdio(c) => mesh.op(c, k),
                                Driver::InProcess(c) => mesh.op(c, k),
                            };
                            if i >= warm {
                                samples[k].push(d);
                            }
                        }
                        mesh.round += 1;
                    }
                }
            }
        }
        self.pass_ends[mode as usize].push(self.samples[mode as usize][0].len());
    }

    fn close(self) {
        match self.kind {
            Kind::Pipe(c) | Kind::Noop(c) | Kind::Mesh(Driver::Stdio(c), _) => c.close(),
            _ => {}
        }
    }
}

/// Set the CPU affinity of every thread of each process (`taskset -a -p -c`).
fn set_affinity(pids: &[u32], cpus: &str) {
    for pid in pids {
        let ok = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`taskset -a -p -c {cpus} {pid}` failed (util-linux); set MESH_BENCH_MODES=natural to run without pinning"
        );
    }
}

fn all_cpus() -> String {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("0-{}", n - 1)
}

const RETRIEVE_LINE_LEN: usize = 149;
const DISK_SPAN: u64 = 4 << 20;

struct Variant {
    label: &'static str,
    db: &'static str, // "file" or ":memory:"
    multi_thread: bool,
    log_level: Option<&'static str>,
    /// `--durability` (None: the server's default).
    durability: Option<&'static str>,
    /// `MESH_METRICS=off`: nothing recorded (the metrics cost, issue 6 point 8).
    metrics_off: bool,
}

const METRICS_OFF: &str = "mesh-mcp sqlite, ct, metrics=off";
const IN_PROCESS_OFF: &str = "in-process engine, sqlite, metrics=off";

const VARIANTS: [Variant; 7] = [
    Variant { label: MAIN, db: "file", multi_thread: false, log_level: None, durability: None, metrics_off: false },
    Variant {
        label: "mesh-mcp sqlite power, ct",
        db: "file",
        multi_thread: false,
        log_level: None,
        durability: Some("power"),
        metrics_off: false,
    },
    Variant {
        label: "mesh-mcp sqlite, multi-thread",
        db: "file",
        multi_thread: true,
        log_level: None,
        durability: None,
        metrics_off: false,
    },
    Variant {
        label: "mesh-mcp sqlite, ct, log=debug",
        db: "file",
        multi_thread: false,
        log_level: Some("debug"),
        durability: None,
        metrics_off: false,
    },
    Variant {
        label: "mesh-mcp :memory:, current-thr",
        db: ":memory:",
        multi_thread: false,
        log_level: None,
        durability: None,
        metrics_off: false,
    },
    Variant {
        label: "mesh-mcp :memory:, multi-thread",
        db: ":memory:",
        multi_thread: true,
        log_level: None,
        durability: None,
        metrics_off: false,
    },
    Variant {
        label: METRICS_OFF,
        db: "file",
        multi_thread: false,
        log_level: None,
        durability: None,
        metrics_off: true,
    },
];

const NOOP_MODES: [(&str, &str); 4] = [
    ("mt-pipes", "noop rmcp, multi-thread, pipes"),
    ("ct-pipes", "noop rmcp, current-thr, pipes"),
    ("mt-stdio", "noop rmcp, multi-thread, stdio"),
    ("ct-stdio", "noop rmcp, current-thr, stdio"),
];

/// The do-nothing server in `mode`, its `sized` tool answering `result`.
fn noop_command(cfg: &Config, mode: &str, result: &str) -> Command {
    let mut cmd = Command::new(&cfg.me);
    cmd.env(NOOP_ENV, mode).env(NOOP_RESULT_ENV, result);
    cmd
}

/// `swarm_status`'s result in the bench's swarm, as JSON: what the do-nothing server's `sized`
/// answers. From the engine in this process, on a database of its own.
fn status_result(dir: &Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let db = dir.join("status-result.db").display().to_string();
    let engine = mesh_mcp::open_engine(&db, mesh_mcp::store::Durability::default()).expect("open an engine");
    let mut c = InProcess { rt, engine };
    Mesh::setup(&mut c);
    c.call("swarm_status", &json!({})).1.to_string()
}

fn mesh_command(
    cfg: &Config,
    db: &str,
    multi_thread: bool,
    log_level: Option<&str>,
    durability: Option<&str>,
) -> Command {
    let mut cmd = Command::new(&cfg.bin);
    cmd.arg("serve").arg("--db").arg(db);
    if let Some(d) = durability {
        cmd.arg("--durability").arg(d);
    }
    if multi_thread {
        cmd.arg("--multi-thread");
    }
    for var in [
        "MESH_LOG_LEVEL",
        "RUST_LOG",
        "MESH_DEBUG",
        "MESH_LOG_FORMAT",
        "MESH_MCP_DB",
        "MESH_MCP_DURABILITY",
        "MESH_AGENT_TOKEN",
        "MESH_METRICS",
    ] {
        cmd.env_remove(var);
    }
    if let Some(level) = log_level {
        cmd.env("MESH_LOG_LEVEL", level);
    }
    cmd
}

fn file_name(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn build_targets(cfg: &Config, dir: &Path) -> Vec<Target> {
    let mut targets = Vec::new();
    let label = "floor: pipe (cat)";
    if cfg.selected(label) {
        let op = format!("echo {RETRIEVE_LINE_LEN} B line");
        targets.push(Target::new(
            label,
            Kind::Pipe(Client::spawn(Command::new("cat"), "cat", None)),
            cfg.n,
            &[&op],
            None,
        ));
    }
    let label = "floor: disk";
    if cfg.selected(label) {
        let path = dir.join("fsync-probe.bin");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create the fsync probe");
        f.write_all_at(&vec![0u8; DISK_SPAN as usize], 0).expect("fill the fsync probe");
        f.sync_all().expect("sync the fsync probe");
        targets.push(Target::new(label, Kind::Disk(f), cfg.n.min(2000), &["4 KiB pwrite + fdatasync"], None));
    }
    let label = "floor: sqlite";
    if cfg.selected(label) {
        let conn = sqlite_floor_db(&dir.join("sqlite-floor.db"));
        let ops = ["read txn of 1 key", "commit of 1 row"];
        targets.push(Target::new(label, Kind::Sqlite(conn), cfg.n.min(2000), &ops, None));
    }
    let status = NOOP_MODES.iter().any(|(_, label)| cfg.selected(label)).then(|| status_result(dir));
    for (mode, label) in NOOP_MODES {
        if cfg.selected(label) {
            let result = status.as_deref().unwrap_or("{}");
            let mut c = Client::spawn(noop_command(cfg, mode, result), label, None);
            c.initialize();
            let idle = c.rss_kib();
            targets.push(Target::new(label, Kind::Noop(c), cfg.n, &NOOP_OPS, Some(idle)));
        }
    }
    for v in VARIANTS.iter().filter(|v| cfg.selected(v.label)) {
        let db = if v.db == "file" {
            dir.join(format!("{}.db", file_name(v.label))).display().to_string()
        } else {
            v.db.to_string()
        };
        let log = dir.join(format!("{}.stderr.log", file_name(v.label)));
        let mut command = mesh_command(cfg, &db, v.multi_thread, v.log_level, v.durability);
        if v.metrics_off {
            command.env("MESH_METRICS", "off");
        }
        let mut c = Client::spawn(command, v.label, Some(&log));
        c.initialize();
        let idle = c.rss_kib();
        let mesh = Mesh::setup(&mut c);
        let n = if v.label == MAIN { cfg.n } else { cfg.n_side };
        targets.push(Target::new(v.label, Kind::Mesh(Driver::Stdio(c), mesh), n, &OPS, Some(idle)));
    }
    for (label, file) in
        [("in-process engine, sqlite", true), ("in-process engine, :memory:", false), (IN_PROCESS_OFF, true)]
    {
        if cfg.selected(label) {
            let db = if file {
                dir.join(format!("{}.db", file_name(label))).display().to_string()
            } else {
                ":memory:".to_string()
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let mut engine =
                mesh_mcp::open_engine(&db, mesh_mcp::store::Durability::default()).expect("open the in-process engine");
            if label == IN_PROCESS_OFF {
                engine = engine.with_metrics(std::sync::Arc::new(mesh_mcp::metrics::Metrics::new(false, 0)));
            }
            let mut c = InProcess { rt, engine };
            let mesh = Mesh::setup(&mut c);
            targets.push(Target::new(label, Kind::Mesh(Driver::InProcess(c), mesh), cfg.n_side, &OPS, None));
        }
    }
    targets
}

/// A database shaped like the store's key table, opened as the server opens its own.
fn sqlite_floor_db(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open the sqlite floor database");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)).expect("WAL");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("synchronous=NORMAL");
    conn.execute_batch(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO kv VALUES ('memory/bench/k', x'7b2276223a2268656c6c6f227d', 1);",
    )
    .expect("create the sqlite floor table");
    conn
}

/// One read transaction of one key, then one commit of one row.
fn sqlite_floor(conn: &rusqlite::Connection, i: usize) -> (Duration, Duration) {
    let t0 = Instant::now();
    conn.execute_batch("BEGIN").expect("begin");
    let mut read = conn.prepare_cached("SELECT value, mod_rev FROM kv WHERE key = ?1").expect("prepare the read");
    let row: (Vec<u8>, i64) = read.query_row(["memory/bench/k"], |r| Ok((r.get(0)?, r.get(1)?))).expect("read");
    conn.execute_batch("COMMIT").expect("end the read");
    let read_took = t0.elapsed();
    std::hint::black_box(row);
    let t1 = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin the write");
    let mut write = conn.prepare_cached("INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3)").expect("prepare the write");
    write.execute(rusqlite::params!["memory/bench/w", b"{\"v\":1}".as_slice(), i as i64]).expect("write");
    conn.execute_batch("COMMIT").expect("commit");
    (read_took, t1.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone)]
struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn stats(samples: &[Duration]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Nearest-rank percentiles.
    let pct = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    Some(Stats { n: us.len(), p50: pct(0.50), p90: pct(0.90), p99: pct(0.99), max: us[us.len() - 1] })
}

/// (total, steal) jiffies of all CPUs, from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    (fields.iter().take(8).sum(), fields.get(7).copied().unwrap_or(0))
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{nproc} CPUs ({model}), Linux {}", kernel.trim())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Cold start

struct Cold {
    label: &'static str,
    mode: Mode,
    ms: Vec<f64>,
}

/// Spawn -> initialize reply, `cfg.cold` times per case, the cases interleaved; one discarded
/// round first (page cache).
fn cold_starts(cfg: &Config, dir: &Path, mode: Mode) -> Vec<Cold> {
    let existing = dir.join("cold-existing.db").display().to_string();
    type Make<'a> = Box<dyn Fn(usize) -> Command + 'a>;
    let cases: Vec<(&'static str, Make)> = vec![
        (
            "mesh-mcp, new sqlite file",
            Box::new(|i| {
                mesh_command(
                    cfg,
                    &dir.join(format!("cold-{}-{i}.db", mode.name())).display().to_string(),
                    false,
                    None,
                    None,
                )
            }),
        ),
        ("mesh-mcp, existing sqlite file", Box::new(|_| mesh_command(cfg, &existing, false, None, None))),
        ("mesh-mcp, :memory:", Box::new(|_| mesh_command(cfg, ":memory:", false, None, None))),
        ("noop rmcp, current-thr, pipes", Box::new(|_| noop_command(cfg, "ct-pipes", "{}"))),
        ("noop rmcp, multi-thread, pipes", Box::new(|_| noop_command(cfg, "mt-pipes", "{}"))),
    ];
    let cases: Vec<_> = cases.into_iter().filter(|(l, _)| cfg.selected(l)).collect();
    if cfg.cold == 0 {
        return Vec::new();
    }
    let mut colds: Vec<Cold> = cases.iter().map(|(l, _)| Cold { label: l, mode, ms: Vec::new() }).collect();
    for i in 0..=cfg.cold {
        for (k, (label, make)) in cases.iter().enumerate() {
            let t0 = Instant::now();
            let mut c = Client::spawn(make(i), label, None);
            c.initialize();
            let d = t0.elapsed();
            c.close();
            if i > 0 {
                colds[k].ms.push(d.as_secs_f64() * 1e3);
            }
        }
    }
    for c in &mut colds {
        c.ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    colds
}

fn median(v: &[f64]) -> f64 {
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------

fn run(cfg: &Config, dir: &Path) {
    let started = Instant::now();
    eprintln!(
        "stdio bench: server {}, db dir {}, n={} n_side={} warmup={} passes={} cold={} modes={:?}{}",
        cfg.bin.display(),
        dir.display(),
        cfg.n,
        cfg.n_side,
        cfg.warmup,
        cfg.passes,
        cfg.cold,
        cfg.modes,
        if cfg.smoke { " (smoke)" } else { "" }
    );
    let load_start = loadavg();
    let mut steal = [(0u64, 0u64); 2];

    let mut targets = build_targets(cfg, dir);
    let warm = cfg.warmup.div_ceil(cfg.passes);
    let mut pids: Vec<u32> = targets.iter().filter_map(Target::pid).collect();
    pids.push(std::process::id());
    let all = all_cpus();
    let in_mode = |mode: Mode, steal: &mut [(u64, u64); 2], f: &mut dyn FnMut()| {
        if mode == Mode::Pinned {
            set_affinity(&pids, "0");
        }
        let j0 = cpu_jiffies();
        f();
        let j1 = cpu_jiffies();
        if mode == Mode::Pinned {
            set_affinity(&pids, &all);
        }
        steal[mode as usize].0 += j1.0 - j0.0;
        steal[mode as usize].1 += j1.1 - j0.1;
    };
    for pass in 0..cfg.passes {
        let t = Instant::now();
        for &mode in &cfg.modes {
            in_mode(mode, &mut steal, &mut || {
                for target in targets.iter_mut() {
                    let count = target.n / cfg.passes + if pass + 1 == cfg.passes { target.n % cfg.passes } else { 0 };
                    target.chunk(cfg, mode, warm, count);
                }
            });
        }
        eprintln!("pass {}/{} done in {:.1} s", pass + 1, cfg.passes, t.elapsed().as_secs_f64());
    }
    let loaded: Vec<Option<u64>> = targets.iter().map(Target::rss_kib).collect();
    let mut colds = Vec::new();
    for &mode in &cfg.modes {
        in_mode(mode, &mut steal, &mut || colds.extend(cold_starts(cfg, dir, mode)));
    }
    let load_end = loadavg();

    let get = |mode: Mode, label: &str, op: usize| -> Option<Stats> {
        targets.iter().find(|t| t.label == label).and_then(|t| t.samples[mode as usize].get(op)).and_then(|s| stats(s))
    };
    let first = cfg.modes[0];

    // ---- header
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# mesh-mcp stdio bench");
    let _ = writeln!(w);
    let _ = writeln!(w, "- machine: {}; loadavg {load_start} at start, {load_end} at end", machine());
    for &mode in &cfg.modes {
        let (total, st) = steal[mode as usize];
        let _ = writeln!(
            w,
            "- CPU steal while measuring in {} mode: {:.1}%",
            mode.name(),
            st as f64 / total.max(1) as f64 * 100.0
        );
    }
    let _ = writeln!(w, "- server: {}; databases in {}", cfg.bin.display(), dir.display());
    let _ = writeln!(
        w,
        "- {} passes, each running every variant in each mode; per op {} recorded calls (main variant and floors) or {} (other variants), after {} warm-up calls; order: {}",
        cfg.passes,
        cfg.n,
        cfg.n_side,
        warm * cfg.passes,
        if cfg.blocks { "blocks" } else { "interleaved rounds of the six ops" }
    );
    let _ = writeln!(w, "- modes: pinned = the bench and every server on CPU 0 (each hop a same-CPU context switch: the software's cost, stable run to run); natural = as the OS schedules them (on this VM a cross-vCPU wake-up goes through the hypervisor)");

    // ---- round trips
    for &mode in &cfg.modes {
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "## Round trips, {} mode, microseconds (write request line -> read matching reply line)",
            mode.name()
        );
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "| {:<31} | {:<26} | {:>5} | {:>7} | {:>7} | {:>7} | {:>8} |",
            "server / variant", "op", "n", "p50", "p90", "p99", "max"
        );
        let _ = writeln!(w, "|{:-<33}|{:-<28}|{:->7}|{:->9}|{:->9}|{:->9}|{:->10}|", "", "", "", "", "", "", "");
        for t in &targets {
            for (k, op) in t.ops.iter().enumerate() {
                if let Some(s) = stats(&t.samples[mode as usize][k]) {
                    let _ = writeln!(
                        w,
                        "| {:<31} | {:<26} | {:>5} | {:>7.1} | {:>7.1} | {:>7.1} | {:>8.1} |",
                        t.label, op, s.n, s.p50, s.p90, s.p99, s.max
                    );
                }
            }
        }
        // Drift: how the same thing moved from pass to pass.
        let _ = writeln!(w);
        for label in ["floor: pipe (cat)", "noop rmcp, current-thr, pipes", MAIN] {
            if let Some(t) = targets.iter().find(|t| t.label == label) {
                let mut start = 0;
                let per_pass: Vec<String> = t.pass_ends[mode as usize]
                    .iter()
                    .map(|&end| {
                        let s = stats(&t.samples[mode as usize][0][start..end])
                            .map_or("-".into(), |s| format!("{:.1}", s.p50));
                        start = end;
                        s
                    })
                    .collect();
                let _ = writeln!(w, "- p50 per pass of `{}` {}: {} us", label, t.ops[0], per_pass.join(", "));
            }
        }
    }

    // ---- cold start and RSS
    if !colds.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "## Cold start: spawn -> initialize reply, {} runs per case (cases interleaved), milliseconds",
            cfg.cold
        );
        let _ = writeln!(w);
        let _ = writeln!(w, "| {:<40} | {:<7} | {:>7} | {:>7} | {:>7} |", "server", "mode", "median", "min", "max");
        let _ = writeln!(w, "|{:-<42}|{:-<9}|{:->9}|{:->9}|{:->9}|", "", "", "", "", "");
        for c in &colds {
            let _ = writeln!(
                w,
                "| {:<40} | {:<7} | {:>7.2} | {:>7.2} | {:>7.2} |",
                c.label,
                c.mode.name(),
                median(&c.ms),
                c.ms[0],
                c.ms[c.ms.len() - 1]
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "## RSS (VmRSS, MiB): idle = after initialize, loaded = after all passes");
    let _ = writeln!(w);
    let _ = writeln!(w, "| {:<40} | {:>7} | {:>7} |", "server", "idle", "loaded");
    let _ = writeln!(w, "|{:-<42}|{:->9}|{:->9}|", "", "", "");
    for (t, loaded) in targets.iter().zip(&loaded) {
        if let (Some(idle), Some(loaded)) = (t.idle_rss_kib, loaded) {
            let _ =
                writeln!(w, "| {:<40} | {:>7.1} | {:>7.1} |", t.label, idle as f64 / 1024.0, *loaded as f64 / 1024.0);
        }
    }

    // ---- targets
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "## Targets (main variant `{MAIN}`; {})",
        cfg.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(" / ")
    );
    let _ = writeln!(w);
    let check = |w: &mut String, what: &str, got: &dyn Fn(Mode) -> Option<f64>, target: f64, unit: &str| {
        let vals: Vec<(Mode, f64)> = cfg.modes.iter().filter_map(|&m| got(m).map(|v| (m, v))).collect();
        if vals.is_empty() {
            return;
        }
        let shown: Vec<String> = vals
            .iter()
            .map(|(m, v)| format!("{v:.1} {unit} {}: {}", m.name(), if *v <= target { "met" } else { "MISSED" }))
            .collect();
        let _ = writeln!(w, "- {what} <= {target} {unit}: {}", shown.join("; "));
    };
    check(w, "memory_usage retrieve p50", &|m| get(m, MAIN, 0).map(|s| s.p50), 35.0, "us");
    check(w, "swarm_status p50", &|m| get(m, MAIN, 2).map(|s| s.p50), 35.0, "us");
    check(w, "memory_usage store p50, default durability", &|m| get(m, MAIN, 1).map(|s| s.p50), 60.0, "us");
    check(
        w,
        "memory_usage store p50, --durability power",
        &|m| get(m, "mesh-mcp sqlite power, ct", 1).map(|s| s.p50),
        60.0,
        "us",
    );
    for (k, op) in OPS.iter().enumerate() {
        check(w, &format!("{op} p99"), &|m| get(m, MAIN, k).map(|s| s.p99), 150.0, "us");
    }
    for label in ["mesh-mcp, new sqlite file", "mesh-mcp, existing sqlite file"] {
        check(
            w,
            &format!("cold start median, {label}"),
            &|m| colds.iter().find(|c| c.label == label && c.mode == m).map(|c| median(&c.ms)),
            20.0,
            "ms",
        );
    }
    // Issue 18's targets: p50 over the pipe floor of the same run and mode, and p99 / p50.
    let over_floor = |m: Mode, k: usize| Some(get(m, MAIN, k)?.p50 - get(m, "floor: pipe (cat)", 0)?.p50);
    for (k, target) in [(0, 40.0), (1, 60.0), (2, 40.0)] {
        check(w, &format!("{} p50 over the pipe floor", OPS[k]), &|m| over_floor(m, k), target, "us");
        check(w, &format!("{} p99 / p50", OPS[k]), &|m| get(m, MAIN, k).map(|s| s.p99 / s.p50), 3.0, "x");
    }
    let answer = |m: Mode| Some(get(m, "noop rmcp, current-thr, pipes", 1)?.p50 - get(m, "floor: pipe (cat)", 0)?.p50);
    let shown: Vec<String> =
        cfg.modes.iter().filter_map(|&m| answer(m).map(|v| format!("{v:.1} us {}", m.name()))).collect();
    if !shown.is_empty() {
        let _ = writeln!(
            w,
            "- swarm_status's answer alone, over the pipe floor (rmcp returning that result and doing nothing \
             else: noop `status-sized`, current-thread, pipes): {}",
            shown.join("; ")
        );
    }
    if let Some(idle) = targets.iter().find(|t| t.label == MAIN).and_then(|t| t.idle_rss_kib) {
        let _ = writeln!(
            w,
            "- idle RSS <= 30 MiB: {:.1} MiB: {}",
            idle as f64 / 1024.0,
            if idle <= 30 * 1024 { "met" } else { "MISSED" }
        );
    }

    // ---- ratios, all from this run
    let _ = writeln!(w);
    let _ = writeln!(w, "## Ratios of p50s ({} mode, this run)", first.name());
    let _ = writeln!(w);
    let m = first;
    let ratio = |w: &mut String, what: &str, a: Option<Stats>, b: Option<Stats>| {
        if let (Some(a), Some(b)) = (a, b) {
            let bullet = if what.starts_with(' ') { "  - " } else { "- " };
            let _ =
                writeln!(w, "{bullet}{}: {:.2}x ({:.1} / {:.1} us)", what.trim_start(), a.p50 / b.p50, a.p50, b.p50);
        }
    };
    let (noop_ct, noop_mt) = ("noop rmcp, current-thr, pipes", "noop rmcp, multi-thread, pipes");
    ratio(w, "noop: multi-thread / current-thread (stdio_pipes)", get(m, noop_mt, 0), get(m, noop_ct, 0));
    ratio(
        w,
        "noop: stdio() / stdio_pipes() (multi-thread)",
        get(m, "noop rmcp, multi-thread, stdio", 0),
        get(m, noop_mt, 0),
    );
    ratio(
        w,
        "noop: stdio() / stdio_pipes() (current-thread)",
        get(m, "noop rmcp, current-thr, stdio", 0),
        get(m, noop_ct, 0),
    );
    ratio(w, "noop current-thread / bare pipe", get(m, noop_ct, 0), get(m, "floor: pipe (cat)", 0));
    let per_op = |w: &mut String, title: &str, a: &str, b: &str| {
        if get(m, a, 0).is_some() && get(m, b, 0).is_some() {
            let _ = writeln!(w, "- {title}:");
            for (k, op) in OPS.iter().enumerate() {
                ratio(w, &format!("  {op}"), get(m, a, k), get(m, b, k));
            }
        }
    };
    per_op(w, "mesh-mcp multi-thread / current-thread, sqlite", "mesh-mcp sqlite, multi-thread", MAIN);
    per_op(
        w,
        "mesh-mcp multi-thread / current-thread, :memory:",
        "mesh-mcp :memory:, multi-thread",
        "mesh-mcp :memory:, current-thr",
    );
    per_op(w, "MESH_LOG_LEVEL=debug / default (warn)", "mesh-mcp sqlite, ct, log=debug", MAIN);
    per_op(w, "--durability power / default", "mesh-mcp sqlite power, ct", MAIN);
    per_op(w, "metrics on (default) / MESH_METRICS=off, sqlite", MAIN, METRICS_OFF);
    per_op(w, "in-process engine: metrics on / off, sqlite", "in-process engine, sqlite", IN_PROCESS_OFF);
    per_op(w, "sqlite / :memory:", MAIN, "mesh-mcp :memory:, current-thr");
    if get(m, MAIN, 0).is_some() && get(m, noop_ct, 0).is_some() {
        let _ = writeln!(w, "- mesh-mcp (main) / noop rmcp (current-thread, stdio_pipes):");
        for (k, op) in OPS.iter().enumerate() {
            ratio(w, &format!("  {op}"), get(m, MAIN, k), get(m, noop_ct, 0));
        }
    }
    ratio(
        w,
        "swarm_status / noop rmcp answering swarm_status's own result (current-thread, stdio_pipes)",
        get(m, MAIN, 2),
        get(m, noop_ct, 1),
    );
    if get(m, MAIN, 0).is_some() && get(m, "in-process engine, sqlite", 0).is_some() {
        let _ = writeln!(w, "- share of the main round trip spent in the engine (in-process p50 / stdio p50):");
        for (k, op) in OPS.iter().enumerate() {
            if let (Some(a), Some(b)) = (get(m, "in-process engine, sqlite", k), get(m, MAIN, k)) {
                let _ = writeln!(w, "  - {op}: {:.0}% ({:.1} / {:.1} us)", a.p50 / b.p50 * 100.0, a.p50, b.p50);
            }
        }
    }
    if cfg.modes.len() == 2 {
        let _ = writeln!(w, "- natural / pinned:");
        ratio(
            w,
            "  floor: pipe (cat)",
            get(Mode::Natural, "floor: pipe (cat)", 0),
            get(Mode::Pinned, "floor: pipe (cat)", 0),
        );
        ratio(w, "  noop rmcp, current-thr", get(Mode::Natural, noop_ct, 0), get(Mode::Pinned, noop_ct, 0));
        ratio(w, "  noop rmcp, multi-thread", get(Mode::Natural, noop_mt, 0), get(Mode::Pinned, noop_mt, 0));
        for (k, op) in OPS.iter().enumerate() {
            ratio(w, &format!("  {op}"), get(Mode::Natural, MAIN, k), get(Mode::Pinned, MAIN, k));
        }
        let _ = writeln!(w, "- natural mode, mesh-mcp multi-thread / current-thread, sqlite:");
        for (k, op) in OPS.iter().enumerate() {
            ratio(
                w,
                &format!("  {op}"),
                get(Mode::Natural, "mesh-mcp sqlite, multi-thread", k),
                get(Mode::Natural, MAIN, k),
            );
        }
        let _ = writeln!(w, "- natural mode, noop multi-thread / current-thread (stdio_pipes):");
        ratio(w, "  tools/call noop", get(Mode::Natural, noop_mt, 0), get(Mode::Natural, noop_ct, 0));
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "bench wall time {:.0} s", started.elapsed().as_secs_f64());
    print!("{out}");
    for t in targets {
        t.close();
    }
}

// ---------------------------------------------------------------------------------------------
// The do-nothing rmcp server (a floor), run when MESH_BENCH_NOOP is set.

mod noop {
    use rmcp::handler::server::router::tool::ToolRouter;
    use rmcp::model::{ServerCapabilities, ServerConfig};
    use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};

    #[derive(Clone)]
    pub struct Noop {
        #[allow(dead_code)]
        tool_router: ToolRouter<Self>,
    }

    impl Noop {
        fn new() -> Self {
            Self { tool_router: Self::tool_router() }
        }
    }

    /// What `sized` answers: `swarm_status`'s result in the bench's swarm, handed over by the
    /// bench in [`super::NOOP_RESULT_ENV`].
    static RESULT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();

    #[tool_router]
    impl Noop {
        #[tool(description = "Does nothing and returns an empty text.")]
        async fn noop(&self) -> String {
            String::new()
        }

        /// Encoded as mesh-mcp encodes a result (`content` text and `structuredContent`, each
        /// from the value), so that what separates the two is our work, not the answer's size.
        #[tool(description = "Returns swarm_status's result, as text and as structured content.")]
        async fn sized(&self) -> rmcp::model::CallToolResult {
            let value = RESULT.get().cloned().unwrap_or_default();
            let mut result =
                rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text(value.to_string())]);
            result.structured_content = Some(value);
            result
        }
    }

    #[tool_handler]
    impl ServerHandler for Noop {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }
    }

    /// `mode`: `mt-pipes`, `ct-pipes`, `mt-stdio` or `ct-stdio`. `mt` is the runtime that
    /// `#[tokio::main]` builds (multi-thread, one worker per CPU); no logging subscriber.
    pub fn serve(mode: &str) {
        let mut builder = match mode {
            "mt-pipes" | "mt-stdio" => tokio::runtime::Builder::new_multi_thread(),
            "ct-pipes" | "ct-stdio" => tokio::runtime::Builder::new_current_thread(),
            other => panic!("unknown {}={other}", super::NOOP_ENV),
        };
        let rt = builder.enable_all().build().expect("tokio runtime");
        let result = std::env::var(super::NOOP_RESULT_ENV).unwrap_or_else(|_| "{}".into());
        RESULT.set(serde_json::from_str(&result).expect("the status result is JSON")).expect("set once");
        rt.block_on(async {
            if mode.ends_with("pipes") {
                let running = Noop::new().serve(rmcp::transport::stdio_pipes()).await.expect("serve");
                let _ = running.waiting().await;
            } else {
                let running = Noop::new().serve(rmcp::transport::stdio()).await.expect("serve");
                let _ = running.waiting().await;
            }
        });
    }
}
