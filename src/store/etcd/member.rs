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

/// A CA and a certificate for 127.0.0.1 signed by it, made with the `openssl` command in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
pub fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let subject = |cn: &str| format!("/CN={cn}");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        &subject("mesh-test-ca"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        &subject("127.0.0.1"),
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
}

impl Member {
    pub async fn start() -> Member {
        Member::start_with(None).await
    }

    /// A member that serves its clients over TLS with the certificate [`make_certs`] made in
    /// `certs`.
    pub async fn start_tls(certs: &std::path::Path) -> Member {
        Member::start_with(Some(certs)).await
    }

    async fn start_with(certs: Option<&std::path::Path>) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if certs.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(std::env::var("MESH_TEST_ETCD").unwrap_or_else(|_| "etcd".into()));
        command
            .args(["--name", "m", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("m={peer_url}")])
            .args(["--max-txn-ops", "4096", "--max-request-bytes", "10485760"]);
        if let Some(certs) = certs {
            command.arg("--cert-file").arg(certs.join("server.pem")).arg("--key-file").arg(certs.join("server.key"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd ({e}): install Debian's etcd-server"));
        let member = Member { child, _dir: dir, client_url };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(std::time::Instant::now() < deadline, "etcd did not listen on {}", member.client_url);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if certs.is_none() {
            member.wait_ready(deadline).await;
        }
        member
    }

    async fn wait_ready(&self, deadline: std::time::Instant) {
        loop {
            let options = etcd_client::ConnectOptions::new().with_timeout(std::time::Duration::from_secs(1));
            let ready = match etcd_client::Client::connect([self.client_url.as_str()], Some(options)).await {
                Ok(mut c) => c.get("ready", None).await.is_ok(),
                Err(_) => false,
            };
            if ready {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "etcd did not answer on {}", self.client_url);
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
