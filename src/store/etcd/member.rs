//! A one-member etcd cluster of Debian's `etcd` on loopback ports, with its data in a temporary
//! directory, for the tests; killed on drop. A missing `etcd` fails the test, naming the package.

use std::process::{Child, Command, Stdio};

pub struct Member {
    child: Child,
    _dir: tempfile::TempDir,
    pub client_url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Member {
    pub async fn start() -> Member {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(std::env::var("MESH_TEST_ETCD").unwrap_or_else(|_| "etcd".into()))
            .args(["--name", "m", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("m={peer_url}")])
            .args(["--max-txn-ops", "4096", "--max-request-bytes", "10485760"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd ({e}): install Debian's etcd-server"));
        let member = Member { child, _dir: dir, client_url };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let options = etcd_client::ConnectOptions::new().with_timeout(std::time::Duration::from_secs(1));
            let ready = match etcd_client::Client::connect([member.client_url.as_str()], Some(options)).await {
                Ok(mut c) => c.get("ready", None).await.is_ok(),
                Err(_) => false,
            };
            if ready {
                return member;
            }
            assert!(std::time::Instant::now() < deadline, "etcd did not answer on {}", member.client_url);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Our address of this member, with `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.client_url.trim_start_matches("http://"))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
