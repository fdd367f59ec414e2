//! A real etcd cluster for the multi-host tests: Debian's `etcd`, one process per member on
//! loopback ports, data in a temporary directory; killed on drop. A missing `etcd` fails the
//! test, naming the package (scripts/test.sh installs it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a starting member's health is asked (this file is also a bench's, so it keeps its
/// own interval rather than the tests' polling helper).
const HEALTH_POLL: Duration = Duration::from_millis(200);

pub struct EtcdCluster {
    members: Vec<Option<Child>>,
    /// Each member's client address, `127.0.0.1:PORT`.
    pub clients: Vec<String>,
    peers: Vec<String>,
    dir: tempfile::TempDir,
}

/// etcd's `/health` answer, if the member answers.
fn health(client: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(client).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(tcp, "GET /health HTTP/1.1\r\nHost: {client}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl EtcdCluster {
    /// Start `n` members and wait until every one answers. A port [`free_port`] found free can
    /// be taken by another test's process before etcd binds it; the member then exits, and the
    /// cluster is started again on fresh ports (three tries).
    pub fn start(n: usize) -> EtcdCluster {
        for _ in 0..3 {
            let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
            let mut cluster = EtcdCluster {
                members: (0..n).map(|_| None).collect(),
                clients: ports.iter().map(|(client, _)| format!("127.0.0.1:{client}")).collect(),
                peers: ports.iter().map(|(_, peer)| format!("127.0.0.1:{peer}")).collect(),
                dir: tempfile::tempdir().unwrap(),
            };
            for i in 0..n {
                cluster.launch(i, "new");
            }
            if (0..n).all(|i| cluster.came_up(i)) {
                return cluster;
            }
            eprintln!("etcd: a member exited while starting (a port taken?); starting again on fresh ports");
        }
        panic!("an etcd cluster of {n} did not come up in three tries");
    }

    fn launch(&mut self, i: usize, state: &str) {
        let initial: Vec<String> = self.peers.iter().enumerate().map(|(j, p)| format!("m{j}=http://{p}")).collect();
        let (client_url, peer_url) = (format!("http://{}", self.clients[i]), format!("http://{}", self.peers[i]));
        let child = Command::new("etcd")
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(self.dir.path().join(format!("m{i}")))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", state])
            // As the README asks: some mesh transactions write more than etcd's default 128 keys.
            .args(["--max-txn-ops", "4096", "--max-request-bytes", "10485760"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd ({e}): install Debian's etcd-server"));
        self.members[i] = Some(child);
    }

    /// Start a killed member again on its data; it rejoins the cluster.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].is_none(), "member {i} runs");
        self.launch(i, "existing");
        self.wait_healthy(&self.clients[i].clone());
    }

    /// Whether member `i` runs.
    pub fn running(&self, i: usize) -> bool {
        self.members[i].is_some()
    }

    /// Poll `client`'s health until it is healthy (30 s at most).
    fn wait_healthy(&self, client: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if health(client).is_some_and(|body| body.contains("\"true\"")) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd member {client} never became healthy");
            std::thread::sleep(HEALTH_POLL);
        }
    }

    /// Whether member `i` becomes healthy within 30 s; false as soon as its process exits.
    fn came_up(&mut self, i: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if health(&self.clients[i]).is_some_and(|body| body.contains("\"true\"")) {
                return true;
            }
            if self.members[i].as_mut().is_none_or(|c| c.try_wait().is_ok_and(|exited| exited.is_some())) {
                return false;
            }
            std::thread::sleep(HEALTH_POLL);
        }
        false
    }

    /// `etcd://` address of the members in this order (the first is the one a server uses
    /// while it answers), with the mesh under `prefix`.
    pub fn url(&self, order: &[usize], prefix: &str) -> String {
        let hosts: Vec<&str> = order.iter().map(|&i| self.clients[i].as_str()).collect();
        format!("etcd://{}/{prefix}", hosts.join(","))
    }

    /// Kill member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
