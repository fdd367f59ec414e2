//! The etcd backend (issue 17): the same [`Store`] on an etcd v3 cluster, so that servers on
//! several hosts form one mesh. `--db etcd://host:2379,host:2379/prefix` names the members and
//! the key prefix the mesh lives under (default `mesh`).
//!
//! What etcd does differently, and how this backend hides it:
//! - Revisions: a new cluster starts at revision 1 where our stores start at 0, so every
//!   revision is shifted by one ([`ours`], [`theirs`]); all processes shift alike.
//! - Endpoints: the client does not fail over, so each member has its own client and a call
//!   that could not reach one (the request never left) is retried on the next.
//! - Leases are renewed with `LeaseKeepAlive`, not inside a transaction: a transaction's
//!   `Op::KeepAlive` renews the lease after the transaction commits, and only then. TTLs are
//!   whole seconds, at least etcd's minimum (2 s at default election timing).
//! - One transaction may not write a key twice, nor put a key inside a range it deletes:
//!   [`plan`] folds such a list into the same end state (a put inside a deleted prefix splits
//!   the delete around it; the last write of a key wins).
//! - Watches and `changes` read etcd's history; past a compaction they report `Compacted`,
//!   and callers read afresh, as a new process does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(test)]
pub(crate) mod member;
mod plan;
mod recent;
mod watch;

use etcd_client as etcd;
use tokio::sync::mpsc;

use super::*;
use plan::{plan, Step};
use recent::Recent;
use watch::Watcher;

/// Whether `db` names an etcd cluster (`etcd://`, or `etcds://` over TLS).
pub fn is_etcd(db: &str) -> bool {
    db.starts_with("etcd://") || db.starts_with("etcds://")
}

/// The cluster and the prefix a mesh lives under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// TLS to the members (`etcds://`), with the files named by `MESH_ETCD_CA_FILE` and, for a
    /// client certificate, `MESH_ETCD_CERT_FILE` and `MESH_ETCD_KEY_FILE`.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl TlsFiles {
    fn from_env() -> Result<Self, StoreError> {
        let var = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
        let ca = var("MESH_ETCD_CA_FILE").ok_or_else(|| {
            StoreError::Backend("etcds:// needs MESH_ETCD_CA_FILE: the CA that signed the members' certificates".into())
        })?;
        let identity = match (var("MESH_ETCD_CERT_FILE"), var("MESH_ETCD_KEY_FILE")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(StoreError::Backend("MESH_ETCD_CERT_FILE and MESH_ETCD_KEY_FILE go together".into())),
        };
        Ok(Self { ca, identity })
    }

    fn options(&self) -> Result<etcd::TlsOptions, StoreError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| StoreError::Backend(format!("etcd TLS: cannot read {}: {e}", path.display())))
        };
        let mut options = etcd::TlsOptions::new().ca_certificate(etcd::Certificate::from_pem(read(&self.ca)?));
        if let Some((cert, key)) = &self.identity {
            options = options.identity(etcd::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(options)
    }
}

impl EtcdTarget {
    /// Parse `etcd://host:port[,host:port...][/prefix]`, or `etcds://...` for TLS (whose files
    /// come from the environment: [`TlsFiles`]).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let (rest, tls) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
            (Some(rest), _) => (rest, None),
            (_, Some(rest)) => (rest, Some(TlsFiles::from_env()?)),
            _ => return Err(StoreError::Backend(format!("`{url}` is not an etcd:// address"))),
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, "mesh"));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoints: Vec<String> =
            hosts.split(',').filter(|h| !h.is_empty()).map(|h| format!("{scheme}://{h}")).collect();
        if endpoints.is_empty() {
            return Err(StoreError::Backend(format!("`{url}` names no etcd member")));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { "mesh".to_string() } else { prefix.to_string() };
        Ok(Self { endpoints, prefix: format!("{prefix}/"), tls })
    }
}

pub struct EtcdStore {
    target: EtcdTarget,
    /// One client per member, so that a member that is down can be passed over; connected on
    /// first use (opening a store is synchronous, connecting is not).
    members: tokio::sync::OnceCell<Vec<etcd::Client>>,
    next: AtomicUsize,
    prefix: Arc<str>,
    /// An open `LeaseKeepAlive` stream per lease recently renewed: a renewal on an open stream
    /// is one message each way, where opening a stream for it cost ~90 ms here.
    keepers: std::sync::Mutex<std::collections::HashMap<LeaseId, Keeper>>,
    /// The namespace's recent changes, which answer `changes` (started by its first call).
    recent: tokio::sync::Mutex<Option<Arc<Recent>>>,
}

type Keeper = (etcd::LeaseKeeper, etcd::LeaseKeepAliveStream);

/// Open keep-alive streams kept at most; past it the cache starts over.
const KEEPERS: usize = 4096;

/// Our revision of an etcd revision (0 stays 0: "none").
fn ours(rev: i64) -> Revision {
    (rev - 1).max(0)
}

/// The etcd revision of ours (0 stays 0).
fn theirs(rev: Revision) -> i64 {
    if rev > 0 {
        rev + 1
    } else {
        0
    }
}

/// Our error of an etcd one; a lease etcd does not know is `LeaseNotFound` (of lease 0: the
/// caller knows which).
fn backend(e: etcd::Error) -> StoreError {
    match e {
        etcd::Error::GRpcStatus(s) if s.message().contains("lease not found") => StoreError::LeaseNotFound(0),
        etcd::Error::LeaseKeepAliveError(m) if m.contains("lease not found") => StoreError::LeaseNotFound(0),
        etcd::Error::GRpcStatus(s) if s.message().contains("too many operations") => StoreError::Backend(format!(
            "etcd: {}: start etcd with --max-txn-ops 4096 (the mesh writes more keys in one transaction than etcd's default 128)",
            s.message()
        )),
        e => StoreError::Backend(format!("etcd: {e}")),
    }
}

/// An error in a line: gRPC's own message rather than its whole chain of sources.
fn brief(e: &etcd::Error) -> String {
    match e {
        etcd::Error::GRpcStatus(s) => format!("{}: {}", s.code(), s.message()),
        e => e.to_string(),
    }
}

/// `result` with a `LeaseNotFound` naming `lease`.
fn of_lease<T>(result: Result<T, StoreError>, lease: LeaseId) -> Result<T, StoreError> {
    result.map_err(|e| match e {
        StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
        e => e,
    })
}

/// Whether the call never reached a member (so it is safe to send it to another).
fn unreachable(e: &etcd::Error) -> bool {
    match e {
        etcd::Error::TransportError(_) | etcd::Error::IoError(_) => true,
        etcd::Error::GRpcStatus(s) => s.code() == tonic::Code::Unavailable && !s.message().contains("leader changed"),
        _ => false,
    }
}

/// Connect to every member named (at least one must answer).
async fn connect(target: &EtcdTarget) -> Result<Vec<etcd::Client>, StoreError> {
    let mut options = etcd::ConnectOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(2))
        .with_timeout(std::time::Duration::from_secs(10));
    if let Some(tls) = &target.tls {
        options = options.with_tls(tls.options()?);
    }
    let mut members = Vec::new();
    let mut last = None;
    for endpoint in &target.endpoints {
        match etcd::Client::connect([endpoint.as_str()], Some(options.clone())).await {
            Ok(client) => members.push(client),
            Err(e) => last = Some(format!("{endpoint}: {e}")),
        }
    }
    if members.is_empty() {
        return Err(StoreError::Backend(format!("no etcd member answered ({})", last.unwrap_or_default())));
    }
    Ok(members)
}

impl EtcdStore {
    /// A store on `target`, connected on first use.
    pub fn new(target: EtcdTarget) -> Self {
        let prefix = target.prefix.clone().into();
        Self {
            target,
            members: tokio::sync::OnceCell::new(),
            next: AtomicUsize::new(0),
            prefix,
            keepers: Default::default(),
            recent: Default::default(),
        }
    }

    async fn members(&self) -> Result<&[etcd::Client], StoreError> {
        self.members.get_or_try_init(|| connect(&self.target)).await.map(Vec::as_slice)
    }

    /// Run `call` on a member, passing over members that cannot be reached.
    async fn on_member<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(etcd::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd::Error>>,
    {
        let members = self.members().await?;
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..members.len() {
            let n = (start + i) % members.len();
            match call(members[n].clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if unreachable(&e) => {
                    self.next.store(n + 1, Ordering::Relaxed);
                    last = Some(e);
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Err(StoreError::Backend(format!("no etcd member answered ({})", brief(&last.expect("at least one member")))))
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    fn kv(&self, kv: &etcd::KeyValue) -> KeyValue {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        KeyValue {
            key: key.strip_prefix(&*self.prefix).unwrap_or(&key).to_string(),
            value: kv.value().to_vec(),
            create_revision: ours(kv.create_revision()),
            mod_revision: ours(kv.mod_revision()),
            version: kv.version(),
            lease: kv.lease(),
        }
    }

    fn compare(&self, c: &Compare) -> etcd::Compare {
        let op = match c.op {
            CompareOp::Equal => etcd::CompareOp::Equal,
            CompareOp::NotEqual => etcd::CompareOp::NotEqual,
            CompareOp::Less => etcd::CompareOp::Less,
            CompareOp::Greater => etcd::CompareOp::Greater,
        };
        let key = self.key(&c.key);
        match &c.target {
            CompareTarget::Value(v) => etcd::Compare::value(key, op, v.clone()),
            CompareTarget::Version(v) => etcd::Compare::version(key, op, *v),
            CompareTarget::ModRevision(r) => etcd::Compare::mod_revision(key, op, theirs(*r)),
            CompareTarget::CreateRevision(r) => etcd::Compare::create_revision(key, op, theirs(*r)),
        }
    }

    /// The etcd operations of one branch, and the leases to renew once it commits.
    fn branch(&self, ops: &[Op]) -> (Vec<etcd::TxnOp>, Vec<LeaseId>) {
        let mut renew = Vec::new();
        let mut out = Vec::new();
        for step in plan(ops) {
            match step {
                Step::Put { key, value, lease } => {
                    let options = (lease != 0).then(|| etcd::PutOptions::new().with_lease(lease));
                    out.push(etcd::TxnOp::put(self.key(&key), value, options));
                }
                Step::Delete { start, end } => {
                    let options = end.map(|end| etcd::DeleteOptions::new().with_range(self.key(&end)));
                    out.push(etcd::TxnOp::delete(self.key(&start), options));
                }
                Step::KeepAlive(lease) => renew.push(lease),
            }
        }
        (out, renew)
    }

    async fn renew(&self, lease: LeaseId) -> Result<i64, StoreError> {
        let cached = self.keepers.lock().unwrap_or_else(|e| e.into_inner()).remove(&lease);
        let was_cached = cached.is_some();
        let (mut keeper, mut stream) = match cached {
            Some(open) => open,
            None => of_lease(self.on_member(|mut c| async move { c.lease_keep_alive(lease).await }).await, lease)?,
        };
        let renewed = async {
            keeper.keep_alive().await?;
            stream.message().await
        };
        let ttl = match renewed.await {
            Ok(Some(r)) if r.ttl() > 0 => r.ttl() * 1000,
            Ok(_) => return Err(StoreError::LeaseNotFound(lease)),
            // The stream died with its member: once more on a fresh one.
            Err(_) if was_cached => return Box::pin(self.renew(lease)).await,
            Err(e) => return of_lease(Err(backend(e)), lease),
        };
        let mut keepers = self.keepers.lock().unwrap_or_else(|e| e.into_inner());
        if keepers.len() >= KEEPERS {
            keepers.clear();
        }
        keepers.insert(lease, (keeper, stream));
        Ok(ttl)
    }
}

/// The first lease a transaction attaches a key to or keeps alive.
fn first_lease(txn: &Txn) -> LeaseId {
    let lease = |op: &Op| match op {
        Op::Put { lease, .. } | Op::KeepAlive { lease } if *lease != 0 => Some(*lease),
        _ => None,
    };
    txn.success.iter().chain(&txn.failure).find_map(lease).unwrap_or(0)
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let (start, end) = (self.key(&req.start), req.end.as_deref().map(|e| self.key(e)));
        let mut resp = self
            .on_member(|mut c| {
                let (start, end) = (start.clone(), end.clone());
                async move {
                    let mut options = etcd::GetOptions::new().with_limit(req.limit as i64);
                    if let Some(end) = end {
                        options = options.with_range(end);
                    }
                    c.get(start, Some(options)).await
                }
            })
            .await?;
        let revision = ours(resp.header().map_or(0, |h| h.revision()));
        // etcd counts from its in-memory index whatever the cap; the cap is applied for the same answer.
        let count = match req.count_cap {
            0 => resp.count() as usize,
            cap => (resp.count() as usize).min(cap),
        };
        let kvs: Vec<KeyValue> = resp.take_kvs().iter().map(|kv| self.kv(kv)).collect();
        Ok(RangeResponse { more: resp.more(), count, kvs, revision })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let compares: Vec<etcd::Compare> = txn.compares.iter().map(|c| self.compare(c)).collect();
        let (success, renew_ok) = self.branch(&txn.success);
        let (failure, renew_else) = self.branch(&txn.failure);
        let request = etcd::Txn::new().when(compares).and_then(success).or_else(failure);
        let resp = match self
            .on_member(|mut c| {
                let r = request.clone();
                async move { c.txn(r).await }
            })
            .await
        {
            // etcd does not say which lease it did not find: the first one the transaction uses.
            Err(StoreError::LeaseNotFound(_)) => return Err(StoreError::LeaseNotFound(first_lease(&txn))),
            other => other?,
        };
        let succeeded = resp.succeeded();
        // The writes are committed: a renewal that fails now must not make them look failed
        // (a caller would retry a done write). The lease lapses if nothing renews it later.
        for lease in if succeeded { renew_ok } else { renew_else } {
            match self.renew(lease).await {
                Ok(_) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(e) => tracing::warn!(lease, error = %e, "a lease renewal after a committed transaction failed"),
            }
        }
        let revision = ours(resp.header().map_or(0, |h| h.revision()));
        Ok(TxnResponse { succeeded, revision, puts: Vec::new() })
    }

    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        let seconds = ((ttl_ms + 999) / 1000).max(1);
        Ok(self.on_member(|mut c| async move { c.lease_grant(seconds, None).await }).await?.id())
    }

    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        self.renew(id).await
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        of_lease(self.on_member(|mut c| async move { c.lease_revoke(id).await }).await, id).map(|_| ())
    }

    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        let options = etcd::LeaseTimeToLiveOptions::new().with_keys();
        let resp = self
            .on_member(|mut c| {
                let o = options.clone();
                async move { c.lease_time_to_live(id, Some(o)).await }
            })
            .await?;
        if resp.ttl() < 0 {
            return Err(StoreError::LeaseNotFound(id));
        }
        let keys = resp
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).trim_start_matches(&*self.prefix).to_string())
            .collect();
        Ok(LeaseInfo { id, ttl_ms: resp.granted_ttl() * 1000, remaining_ms: resp.ttl() * 1000, keys })
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        let from = if from_revision > 0 { theirs(from_revision) } else { self.current().await? + 1 };
        let (tx, rx) = mpsc::channel(1024);
        let watcher =
            Watcher { members: self.members().await?.to_vec(), prefix: self.prefix.clone(), key: prefix.to_string() };
        let first = watcher.open(from).await?;
        tokio::spawn(watcher.forward(first, from, tx));
        Ok(Watch { events: rx })
    }

    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        let now = ours(self.current().await?);
        if after >= now {
            return Ok((Vec::new(), now));
        }
        if let Some(events) = self.recent_changes(prefix, after, now).await? {
            return Ok((events, now));
        }
        let watcher =
            Watcher { members: self.members().await?.to_vec(), prefix: self.prefix.clone(), key: prefix.to_string() };
        watcher.history(theirs(after + 1), theirs(now)).await.map(|events| (events, now))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(ours(self.current().await?))
    }

    fn backend(&self) -> &'static str {
        "etcd"
    }
}

impl EtcdStore {
    /// `changes` from the namespace's recent changes, when they reach back to `after` (the first
    /// call starts following them, from `now`).
    async fn recent_changes(
        &self,
        prefix: &str,
        after: Revision,
        now: Revision,
    ) -> Result<Option<Vec<WatchEvent>>, StoreError> {
        let mut recent = self.recent.lock().await;
        let live = recent.as_ref().filter(|r| !r.dead()).cloned();
        let Some(live) = live else {
            let watcher =
                Watcher { members: self.members().await?.to_vec(), prefix: self.prefix.clone(), key: String::new() };
            *recent = Some(Recent::start(watcher, now).await?);
            return Ok(None);
        };
        drop(recent);
        Ok(live.changes(prefix, after, now).await)
    }

    /// etcd's current revision.
    async fn current(&self) -> Result<i64, StoreError> {
        let key = self.key("");
        let options = etcd::GetOptions::new().with_count_only();
        let resp = self
            .on_member(|mut c| {
                let (k, o) = (key.clone(), options.clone());
                async move { c.get(k, Some(o)).await }
            })
            .await?;
        Ok(resp.header().map_or(1, |h| h.revision()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_members_and_a_prefix() {
        let t = EtcdTarget::parse("etcd://a:2379,b:2379/team").unwrap();
        assert_eq!(t.endpoints, ["http://a:2379", "http://b:2379"]);
        assert_eq!(t.prefix, "team/");
        assert_eq!(EtcdTarget::parse("etcd://a:2379").unwrap().prefix, "mesh/");
        assert!(EtcdTarget::parse("etcd:///x").is_err());
        // No test sets MESH_ETCD_CA_FILE: TLS without a CA to trust is refused, naming it.
        let e = EtcdTarget::parse("etcds://a:2379/team").unwrap_err();
        assert!(e.to_string().contains("MESH_ETCD_CA_FILE"), "{e}");
    }

    #[test]
    fn revisions_shift_by_one_and_none_stays_none() {
        assert_eq!((ours(1), ours(2), ours(0)), (0, 1, 0));
        assert_eq!((theirs(0), theirs(1)), (0, 2));
    }

    async fn store_on(member: &member::Member) -> SharedStore {
        Arc::new(EtcdStore::new(EtcdTarget::parse(&member.url("t")).unwrap()))
    }

    async fn value(store: &SharedStore, key: &str) -> Option<Vec<u8>> {
        get(store.as_ref(), key).await.unwrap().map(|kv| kv.value)
    }

    /// Leases on etcd's own clock, in whole seconds: granted, kept alive (alone or after a
    /// transaction that commits), revoked with their keys, and expired by etcd.
    #[tokio::test]
    async fn leases_run_on_etcds_clock_and_take_their_keys() {
        let member = member::Member::start().await;
        let store = store_on(&member).await;
        let lease = store.lease_grant(1_500).await.unwrap();
        store.txn(Txn::new().and_then([Op::put_with_lease("l/a", "1", lease)])).await.unwrap();
        let info = store.lease_info(lease).await.unwrap();
        assert_eq!((info.ttl_ms, info.keys.clone()), (2_000, vec!["l/a".to_string()]), "rounded up to seconds");
        assert_eq!(store.lease_keepalive(lease).await.unwrap(), 2_000);
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let renewed = Txn::new().and_then([Op::put("l/b", "1"), Op::keepalive(lease)]);
        store.txn(renewed).await.unwrap();
        assert!(store.lease_info(lease).await.unwrap().remaining_ms >= 1_000, "renewed by the transaction");
        store.lease_revoke(lease).await.unwrap();
        assert_eq!(value(&store, "l/a").await, None);
        assert_eq!(store.lease_keepalive(lease).await, Err(StoreError::LeaseNotFound(lease)));
        assert_eq!(store.lease_revoke(lease).await, Err(StoreError::LeaseNotFound(lease)));
        let attach = Txn::new().and_then([Op::put_with_lease("l/c", "1", lease)]);
        assert_eq!(store.txn(attach).await, Err(StoreError::LeaseNotFound(lease)));

        let short = store.lease_grant(1_000).await.unwrap();
        let mut watch = store.watch("l/", 0).await.unwrap();
        store.txn(Txn::new().and_then([Op::put_with_lease("l/d", "1", short)])).await.unwrap();
        let put = tokio::time::timeout(std::time::Duration::from_secs(5), watch.events.recv()).await.unwrap();
        assert_eq!(put.unwrap().unwrap().kind, EventKind::Put);
        let gone = tokio::time::timeout(std::time::Duration::from_secs(10), watch.events.recv()).await.unwrap();
        let gone = gone.unwrap().unwrap();
        assert_eq!((gone.kind, gone.kv.key.as_str()), (EventKind::Delete, "l/d"), "etcd expired it");
        assert_eq!(value(&store, "l/d").await, None);
    }

    /// `etcds://`: a member that serves TLS is reached with the CA that signed its certificate,
    /// and refused with another.
    #[tokio::test]
    async fn etcds_reaches_a_tls_member_with_its_ca_and_not_with_another() {
        let (certs, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        member::make_certs(certs.path());
        member::make_certs(other.path());
        let member = member::Member::start_tls(certs.path()).await;
        let target = |ca: &std::path::Path| EtcdTarget {
            endpoints: vec![member.client_url.clone()],
            prefix: "tls/".into(),
            tls: Some(TlsFiles { ca: ca.join("ca.pem"), identity: None }),
        };
        let store: SharedStore = Arc::new(EtcdStore::new(target(certs.path())));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.revision().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "no TLS answer from {}", member.client_url);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        store.txn(Txn::new().and_then([Op::put("k", "over tls")])).await.unwrap();
        assert_eq!(value(&store, "k").await.unwrap(), b"over tls");
        let stranger = EtcdStore::new(target(other.path()));
        assert!(stranger.revision().await.is_err(), "a certificate from another CA is refused");
    }

    /// What `swarm_init` does: delete a swarm's prefixes and put records inside them, in one
    /// transaction that etcd would refuse as written.
    #[tokio::test]
    async fn a_put_inside_a_prefix_deleted_in_the_same_transaction_commits() {
        let member = member::Member::start().await;
        let store = store_on(&member).await;
        for key in ["s/old", "s/config", "s/zz"] {
            store.txn(Txn::new().and_then([Op::put(key, "stale")])).await.unwrap();
        }
        let txn = Txn::new().when([Compare::value("s/config", CompareOp::Equal, "stale")]).and_then([
            Op::delete_prefix("s/"),
            Op::put("s/config", "new"),
            Op::put("s/graph", "g"),
        ]);
        assert!(store.txn(txn).await.unwrap().succeeded);
        let keys: Vec<String> = get_prefix(store.as_ref(), "s/").await.unwrap().into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, ["s/config", "s/graph"]);
        assert_eq!(value(&store, "s/config").await.unwrap(), b"new");
    }

    /// `changes` reads etcd's history up to now; past a compaction, watches and `changes` say
    /// `Compacted`, so a reader reads the prefix afresh.
    #[tokio::test]
    async fn changes_catch_up_through_history_until_it_is_compacted() {
        let member = member::Member::start().await;
        let store = store_on(&member).await;
        let put = |key: &'static str, v: &'static str| Txn::new().and_then([Op::put(key, v)]);
        let start = store.txn(put("ch/a", "1")).await.unwrap().revision;
        store.txn(put("other/x", "1")).await.unwrap();
        store.txn(put("ch/b", "1")).await.unwrap();
        store.txn(Txn::new().and_then([Op::delete("ch/a"), Op::put("ch/b", "2")])).await.unwrap();
        let (events, upto) = store.changes("ch/", start).await.unwrap();
        let seen: Vec<(EventKind, &str, Revision)> =
            events.iter().map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision)).collect();
        assert_eq!(seen, [(EventKind::Put, "ch/b", 3), (EventKind::Delete, "ch/a", 4), (EventKind::Put, "ch/b", 4)]);
        assert_eq!(upto, 4);
        assert_eq!(store.changes("ch/", upto).await.unwrap(), (Vec::new(), upto), "caught up");
        store.txn(put("other/y", "1")).await.unwrap();
        assert_eq!(store.changes("ch/", upto).await.unwrap(), (Vec::new(), 5), "nothing under the prefix");
        // From the first call on, the namespace's recent changes answer without etcd's history.
        store.txn(put("ch/c", "1")).await.unwrap();
        let (events, upto) = store.changes("ch/", 5).await.unwrap();
        assert_eq!((events.len(), events[0].kv.key.as_str(), upto), (1, "ch/c", 6), "{events:?}");

        let mut client = etcd_client::Client::connect([member.client_url.as_str()], None).await.unwrap();
        client.compact(theirs(4), None).await.unwrap();
        assert!(matches!(store.changes("ch/", start).await, Err(StoreError::Compacted { .. })));
        assert!(matches!(
            store.watch("ch/", 1).await.unwrap().events.recv().await,
            Some(Err(StoreError::Compacted { .. }))
        ));
        let (events, upto) = store.changes("ch/", 4).await.unwrap();
        assert_eq!((events.len(), upto), (1, 6), "from the compaction on, changes read: {events:?}");
    }
}
