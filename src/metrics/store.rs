//! [`Counted`]: a [`Store`] that counts and times every operation of the store it wraps, so
//! store metrics are measured in one place whatever part of the engine calls.

use std::time::Instant;

use super::SharedMetrics;
use crate::store::{
    LeaseId, LeaseInfo, RangeRequest, RangeResponse, Revision, SharedStore, Store, StoreError, Txn, TxnResponse, Watch,
    WatchEvent,
};

pub struct Counted {
    inner: SharedStore,
    metrics: SharedMetrics,
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    Lease,
}

impl Counted {
    pub fn new(inner: SharedStore, metrics: SharedMetrics) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, kind: Kind, started: Instant, result: &Result<T, StoreError>) {
        let m = &self.metrics;
        if !m.enabled() {
            return;
        }
        let counter = match kind {
            Kind::Read => &m.store_reads,
            Kind::Write => &m.store_writes,
            Kind::Lease => &m.store_lease_ops,
        };
        m.add(counter, 1);
        if result.is_err() {
            m.add(&m.store_errors, 1);
        }
        m.observe(&m.store_latency, started.elapsed().as_secs_f64() * 1000.0);
    }
}

#[async_trait::async_trait]
impl Store for Counted {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let t = Instant::now();
        let r = self.inner.range(req).await;
        self.record(Kind::Read, t, &r);
        r
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let t = Instant::now();
        let r = self.inner.txn(txn).await;
        self.record(Kind::Write, t, &r);
        r
    }
    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        let t = Instant::now();
        let r = self.inner.lease_grant(ttl_ms).await;
        self.record(Kind::Lease, t, &r);
        r
    }
    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        let t = Instant::now();
        let r = self.inner.lease_keepalive(id).await;
        self.record(Kind::Lease, t, &r);
        r
    }
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.lease_revoke(id).await;
        self.record(Kind::Lease, t, &r);
        r
    }
    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        let t = Instant::now();
        let r = self.inner.lease_info(id).await;
        self.record(Kind::Read, t, &r);
        r
    }
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        self.inner.watch(prefix, from_revision).await
    }
    async fn watch_coalesced(
        &self,
        prefix: &str,
        from_revision: Revision,
        gap: std::time::Duration,
    ) -> Result<Watch, StoreError> {
        self.inner.watch_coalesced(prefix, from_revision, gap).await
    }
    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        let t = Instant::now();
        let r = self.inner.changes(prefix, after).await;
        self.record(Kind::Read, t, &r);
        r
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        let t = Instant::now();
        let r = self.inner.revision().await;
        self.record(Kind::Read, t, &r);
        r
    }
    fn stalled_since(&self) -> Option<i64> {
        self.inner.stalled_since()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
