//! The backend conformance suite: every test here runs, unchanged, against both the memory and
//! the SQLite backend (see [`conformance!`] at the bottom), so the two cannot drift apart.
//!
//! Each test is an `async fn(SharedStore, Arc<ManualClock>)`; time only moves when a test
//! advances the clock. Stores keep [`HISTORY`] revisions of watch history so that compaction is
//! cheap to reach.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryStore;
use super::sqlite::{SqliteOptions, SqliteStore};
use super::*;

const START_MS: i64 = 1_700_000_000_000;
const HISTORY: i64 = 32;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn put(store: &SharedStore, key: &str, value: &str) -> Revision {
    store.txn(Txn::new().and_then([Op::put(key, value)])).await.unwrap().revision
}

async fn get_kv(store: &SharedStore, key: &str) -> Option<KeyValue> {
    get(store.as_ref(), key).await.unwrap()
}

async fn value_of(store: &SharedStore, key: &str) -> Option<String> {
    get_kv(store, key).await.map(|kv| String::from_utf8(kv.value).unwrap())
}

async fn txn_ok(store: &SharedStore, txn: Txn) -> TxnResponse {
    store.txn(txn).await.unwrap()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next_event(watch: &mut Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.events.recv())
        .await
        .expect("no watch event within 5 s")
        .expect("watch closed")
        .expect("watch error")
}

async fn assert_quiet(watch: &mut Watch) {
    let got = tokio::time::timeout(Duration::from_millis(200), watch.events.recv()).await;
    assert!(got.is_err(), "unexpected watch event: {got:?}");
}

fn assert_event(event: &WatchEvent, kind: EventKind, key: &str, rev: Revision) {
    assert_eq!((event.kind, event.kv.key.as_str(), event.kv.mod_revision), (kind, key, rev), "{event:?}");
}

// ---------------------------------------------------------------------------------------------
// Keys, revisions, transactions
// ---------------------------------------------------------------------------------------------

async fn put_get_tracks_revisions_and_version(store: SharedStore, _clock: Arc<ManualClock>) {
    assert_eq!(store.revision().await.unwrap(), 0, "an empty store is at revision 0");
    assert_eq!(put(&store, "a", "1").await, 1);
    let kv = get_kv(&store, "a").await.unwrap();
    assert_eq!(
        kv,
        KeyValue { key: "a".into(), value: b"1".to_vec(), create_revision: 1, mod_revision: 1, version: 1, lease: 0 }
    );
    assert_eq!(put(&store, "b", "x").await, 2);
    assert_eq!(put(&store, "a", "2").await, 3);
    let kv = get_kv(&store, "a").await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.value), (1, 3, 2, b"2".to_vec()));
    let resp = store.range(RangeRequest::key("missing")).await.unwrap();
    assert_eq!((resp.kvs.len(), resp.count, resp.more, resp.revision), (0, 0, false, 3));
    assert_eq!(store.revision().await.unwrap(), 3);
}

async fn create_only_with_absent(store: SharedStore, _clock: Arc<ManualClock>) {
    let create = |v: &str| Txn::new().when([Compare::absent("lock")]).and_then([Op::put("lock", v)]);
    let first = txn_ok(&store, create("alice")).await;
    assert!(first.succeeded);
    let second = txn_ok(&store, create("bob")).await;
    assert!(!second.succeeded);
    assert_eq!(second.revision, first.revision, "a failed compare with no failure ops writes nothing");
    assert_eq!(value_of(&store, "lock").await.as_deref(), Some("alice"));
}

async fn cas_on_mod_revision_loses_to_earlier_writer(store: SharedStore, _clock: Arc<ManualClock>) {
    let seen = put(&store, "counter", "0").await;
    let cas = |v: &str| {
        Txn::new().when([Compare::mod_revision("counter", CompareOp::Equal, seen)]).and_then([Op::put("counter", v)])
    };
    assert!(txn_ok(&store, cas("1")).await.succeeded);
    assert!(!txn_ok(&store, cas("1-again")).await.succeeded, "the second writer saw a stale mod_revision");
    assert_eq!(value_of(&store, "counter").await.as_deref(), Some("1"));
    // A missing key has mod_revision 0 and create_revision 0.
    let on_missing =
        Txn::new().when([Compare::mod_revision("fresh", CompareOp::Equal, 0)]).and_then([Op::put("fresh", "x")]);
    assert!(txn_ok(&store, on_missing).await.succeeded);
    let create_rev = Compare { key: "nope".into(), op: CompareOp::Equal, target: CompareTarget::CreateRevision(0) };
    assert!(txn_ok(&store, Txn::new().when([create_rev])).await.succeeded);
}

async fn value_and_version_compares(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "color", "blue").await;
    let holds = |cmp: Compare| {
        let store = store.clone();
        async move { txn_ok(&store, Txn::new().when([cmp])).await.succeeded }
    };
    assert!(holds(Compare::value("color", CompareOp::Equal, "blue")).await);
    assert!(!holds(Compare::value("color", CompareOp::Equal, "red")).await);
    assert!(holds(Compare::value("color", CompareOp::NotEqual, "red")).await);
    assert!(holds(Compare::value("color", CompareOp::Less, "c")).await);
    assert!(holds(Compare::value("color", CompareOp::Greater, "blu")).await);
    // A missing key has no value: every value compare on it fails, as in etcd.
    assert!(!holds(Compare::value("none", CompareOp::Equal, "")).await);
    assert!(!holds(Compare::value("none", CompareOp::NotEqual, "x")).await);
    assert!(holds(Compare::version("color", CompareOp::Equal, 1)).await);
    assert!(holds(Compare::version("color", CompareOp::Greater, 0)).await);
    assert!(holds(Compare::version("none", CompareOp::Less, 1)).await);
    // Every compare must hold.
    assert!(!holds(Compare::absent("color")).await);
}

async fn failure_branch_applies_when_compare_fails(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "k", "v").await;
    let txn = Txn::new()
        .when([Compare::value("k", CompareOp::Equal, "other")])
        .and_then([Op::put("k/ok", "1")])
        .or_else([Op::put("k/failed", "1"), Op::delete("k")]);
    let resp = txn_ok(&store, txn).await;
    assert!(!resp.succeeded);
    assert_eq!(resp.revision, 2, "the failure branch is one revision");
    assert_eq!(value_of(&store, "k/failed").await.as_deref(), Some("1"));
    assert!(get_kv(&store, "k/ok").await.is_none());
    assert!(get_kv(&store, "k").await.is_none());
}

async fn failed_txn_changes_nothing(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "k", "v").await;
    let before = store.revision().await.unwrap();
    // A put on a lease that does not exist fails the whole transaction, earlier ops included.
    let txn = Txn::new().and_then([Op::put("x", "1"), Op::delete("k"), Op::put_with_lease("y", "1", 424_242)]);
    assert_eq!(store.txn(txn).await, Err(StoreError::LeaseNotFound(424_242)));
    assert_eq!(store.revision().await.unwrap(), before);
    assert!(get_kv(&store, "x").await.is_none());
    assert_eq!(value_of(&store, "k").await.as_deref(), Some("v"));
    // Only the chosen branch's leases matter.
    let txn = Txn::new()
        .when([Compare::absent("nope")])
        .and_then([Op::put("z", "1")])
        .or_else([Op::put_with_lease("w", "1", 424_242)]);
    assert!(txn_ok(&store, txn).await.succeeded);
}

async fn noop_txns_keep_the_revision(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "k", "v").await;
    for txn in [
        Txn::new(),
        Txn::new().and_then([Op::delete("missing")]),
        Txn::new().and_then([Op::delete_prefix("nothing/"), Op::delete("missing")]),
        Txn::new().when([Compare::absent("k")]).and_then([Op::put("k", "never")]),
    ] {
        assert_eq!(txn_ok(&store, txn).await.revision, 1);
    }
}

async fn delete_then_recreate_resets_create_revision(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "k", "1").await;
    put(&store, "k", "2").await;
    let resp = txn_ok(&store, Txn::new().and_then([Op::delete("k")])).await;
    assert_eq!(resp.revision, 3);
    assert!(get_kv(&store, "k").await.is_none());
    let rev = put(&store, "k", "3").await;
    let kv = get_kv(&store, "k").await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (rev, rev, 1));
}

async fn duplicate_keys_in_one_txn_apply_in_order(store: SharedStore, _clock: Arc<ManualClock>) {
    let resp = txn_ok(&store, Txn::new().and_then([Op::put("k", "1"), Op::put("k", "2")])).await;
    assert_eq!(resp.revision, 1);
    let kv = get_kv(&store, "k").await.unwrap();
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision, kv.version), (&b"2"[..], 1, 1, 2));
    let resp = txn_ok(&store, Txn::new().and_then([Op::put("j", "1"), Op::delete("j")])).await;
    assert_eq!(resp.revision, 2);
    assert!(get_kv(&store, "j").await.is_none());
}

async fn puts_report_what_they_wrote(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "a", "0").await;
    let txn = Txn::new().and_then([Op::put("a", "1"), Op::delete("gone"), Op::put("b", "2"), Op::put("a", "3")]);
    let resp = txn_ok(&store, txn).await;
    if store.backend() == "etcd" {
        assert!(resp.puts.is_empty(), "etcd does not report its puts: {resp:?}");
        return;
    }
    let (a, b) = (get_kv(&store, "a").await.unwrap(), get_kv(&store, "b").await.unwrap());
    assert_eq!((a.version, b.version, resp.revision), (3, 1, 2));
    let expected =
        [PutResult { create_revision: 1, mod_revision: 2, version: 2 }, PutResult::of(&b), PutResult::of(&a)];
    assert_eq!(resp.puts, expected, "every put of the applied branch, in order");
    let failed = Txn::new().when([Compare::absent("a")]).and_then([Op::put("x", "1")]).or_else([Op::delete("b")]);
    assert!(txn_ok(&store, failed).await.puts.is_empty(), "the branch that ran put nothing");
}

// ---------------------------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------------------------

async fn range_by_prefix_is_byte_ordered_with_limit(store: SharedStore, _clock: Arc<ManualClock>) {
    let mut under = vec!["p/b", "p/a", "p/c/1", "p/B", "p/\u{e9}", "p/a0", "p/~"];
    for key in under.iter().chain(&["q/x", "p", "p0"]) {
        put(&store, key, "v").await;
    }
    under.sort(); // Rust's str order is byte order, which both backends must follow
    let all = store.range(RangeRequest::prefix("p/")).await.unwrap();
    assert_eq!(keys(&all.kvs), under);
    assert_eq!((all.count, all.more, all.revision), (under.len(), false, 10));

    let page = store.range(RangeRequest { limit: 2, ..RangeRequest::prefix("p/") }).await.unwrap();
    assert_eq!(keys(&page.kvs), &under[..2]);
    assert_eq!((page.count, page.more), (under.len(), true));
    // A capped count says "at least the cap" and never reads past it.
    let capped = store.range(RangeRequest { limit: 2, count_cap: 4, ..RangeRequest::prefix("p/") }).await.unwrap();
    assert_eq!((keys(&capped.kvs), capped.count, capped.more), (under[..2].to_vec(), 4, true));
    let roomy = store.range(RangeRequest { limit: 2, count_cap: 100, ..RangeRequest::prefix("p/") }).await.unwrap();
    assert_eq!((roomy.count, roomy.more), (under.len(), true));
    let exact = store.range(RangeRequest { limit: under.len(), ..RangeRequest::prefix("p/") }).await.unwrap();
    assert_eq!((exact.kvs.len(), exact.count, exact.more), (under.len(), under.len(), false));

    let span = RangeRequest { start: "p/a".into(), end: Some("p/c".into()), ..Default::default() };
    assert_eq!(keys(&store.range(span).await.unwrap().kvs), ["p/a", "p/a0", "p/b"]);
    let backwards = RangeRequest { start: "p/c".into(), end: Some("p/a".into()), ..Default::default() };
    assert_eq!(store.range(backwards).await.unwrap().count, 0);
}

async fn prefix_after_paginates(store: SharedStore, _clock: Arc<ManualClock>) {
    let expected: Vec<String> = (0..7).map(|i| format!("page/{i:02}")).collect();
    for key in &expected {
        put(&store, key, "v").await;
    }
    put(&store, "page0", "outside").await;
    put(&store, "pagf", "outside").await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let req = RangeRequest::prefix_after("page/", after.as_deref(), 3);
        let page = store.range(req).await.unwrap();
        assert_eq!(page.more, seen.len() + page.kvs.len() < expected.len());
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, expected);
}

async fn delete_prefix_removes_exactly_the_prefix(store: SharedStore, _clock: Arc<ManualClock>) {
    for key in ["dp/a", "dp/c/d", "dp/b", "dpx", "dp"] {
        put(&store, key, "v").await;
    }
    let resp = txn_ok(&store, Txn::new().and_then([Op::delete_prefix("dp/")])).await;
    assert_eq!(resp.revision, 6, "one revision for the whole prefix");
    assert_eq!(keys(&get_prefix(store.as_ref(), "dp").await.unwrap()), ["dp", "dpx"]);
    let mut watch = store.watch("dp/", 6).await.unwrap();
    for key in ["dp/a", "dp/b", "dp/c/d"] {
        let event = next_event(&mut watch).await;
        assert_event(&event, EventKind::Delete, key, 6);
        assert!(event.kv.value.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

async fn lease_grant_keepalive_revoke(store: SharedStore, clock: Arc<ManualClock>) {
    let id = store.lease_grant(10_000).await.unwrap();
    let other = store.lease_grant(10_000).await.unwrap();
    assert!(id != 0 && other != 0 && id != other);
    assert_eq!(store.revision().await.unwrap(), 0, "granting writes no key");
    txn_ok(&store, Txn::new().and_then([Op::put_with_lease("l/a", "1", id), Op::put_with_lease("l/b", "1", id)])).await;
    // Re-putting a key without the lease detaches it.
    txn_ok(&store, Txn::new().and_then([Op::put_with_lease("l/c", "1", id)])).await;
    put(&store, "l/c", "2").await;
    assert_eq!(get_kv(&store, "l/a").await.unwrap().lease, id);

    clock.advance(4_000);
    let info = store.lease_info(id).await.unwrap();
    assert_eq!(info, LeaseInfo { id, ttl_ms: 10_000, remaining_ms: 6_000, keys: vec!["l/a".into(), "l/b".into()] });
    assert_eq!(store.lease_keepalive(id).await.unwrap(), 10_000);
    assert_eq!(store.lease_info(id).await.unwrap().remaining_ms, 10_000);

    let before = store.revision().await.unwrap();
    store.lease_revoke(id).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before + 1, "a revoke deletes its keys in one revision");
    assert_eq!(keys(&get_prefix(store.as_ref(), "l/").await.unwrap()), ["l/c"]);
    assert_eq!(store.lease_info(id).await, Err(StoreError::LeaseNotFound(id)));
    assert_eq!(store.lease_keepalive(id).await, Err(StoreError::LeaseNotFound(id)));
    assert_eq!(store.lease_revoke(id).await, Err(StoreError::LeaseNotFound(id)));
    // Revoking a lease with no keys writes nothing.
    store.lease_revoke(other).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before + 1);
    assert!(store.lease_grant(0).await.is_err(), "a lease needs a positive TTL");
}

async fn keepalive_in_a_txn_renews_only_when_it_commits(store: SharedStore, clock: Arc<ManualClock>) {
    let id = store.lease_grant(1_000).await.unwrap();
    txn_ok(&store, Txn::new().and_then([Op::put_with_lease("k/live", "1", id)])).await;
    clock.advance(800);
    let rev = txn_ok(&store, Txn::new().and_then([Op::put("k/hb", "1"), Op::keepalive(id)])).await.revision;
    assert_eq!(store.lease_info(id).await.unwrap().remaining_ms, 1_000);
    // A failed compare takes the (empty) failure branch: no renewal.
    clock.advance(800);
    let missed = Txn::new().when([Compare::absent("k/hb")]).and_then([Op::keepalive(id)]);
    assert!(!txn_ok(&store, missed).await.succeeded);
    assert_eq!(store.lease_info(id).await.unwrap().remaining_ms, 200);
    // Once expired, a keepalive fails the whole transaction and writes nothing.
    clock.advance(200);
    let late = Txn::new().and_then([Op::put("k/hb", "2"), Op::keepalive(id)]);
    assert_eq!(store.txn(late).await, Err(StoreError::LeaseNotFound(id)));
    assert_eq!(value_of(&store, "k/hb").await.as_deref(), Some("1"));
    assert!(get_kv(&store, "k/live").await.is_none());
    assert!(store.revision().await.unwrap() >= rev);
}

async fn expired_lease_is_invisible_at_once(store: SharedStore, clock: Arc<ManualClock>) {
    let id = store.lease_grant(1_000).await.unwrap();
    txn_ok(&store, Txn::new().and_then([Op::put_with_lease("e/leased", "1", id), Op::put("e/plain", "1")])).await;
    clock.advance(999);
    assert!(get_kv(&store, "e/leased").await.is_some());
    clock.advance(1); // now == expiry: gone, before anything reaps it
    assert!(get_kv(&store, "e/leased").await.is_none());
    let all = store.range(RangeRequest::prefix("e/")).await.unwrap();
    assert_eq!((keys(&all.kvs), all.count), (vec!["e/plain"], 1));
    assert_eq!(store.lease_info(id).await, Err(StoreError::LeaseNotFound(id)));
    assert_eq!(store.lease_keepalive(id).await, Err(StoreError::LeaseNotFound(id)));

    let txn = Txn::new().and_then([Op::put("e/new", "1"), Op::put_with_lease("e/again", "1", id)]);
    assert_eq!(store.txn(txn).await, Err(StoreError::LeaseNotFound(id)));
    assert!(get_kv(&store, "e/new").await.is_none() && get_kv(&store, "e/again").await.is_none());
    assert_eq!(value_of(&store, "e/plain").await.as_deref(), Some("1"));
}

async fn compares_treat_expired_keys_as_absent(store: SharedStore, clock: Arc<ManualClock>) {
    let id = store.lease_grant(500).await.unwrap();
    let first = txn_ok(&store, Txn::new().and_then([Op::put_with_lease("owner", "old", id)])).await.revision;
    clock.advance(500);
    let claim = Txn::new().when([Compare::absent("owner")]).and_then([Op::put("owner", "new")]);
    let resp = txn_ok(&store, claim).await;
    assert!(resp.succeeded);
    let kv = get_kv(&store, "owner").await.unwrap();
    assert!(kv.create_revision > first);
    assert_eq!((kv.version, kv.lease, kv.mod_revision), (1, 0, resp.revision));
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

async fn watch_replays_then_streams_live(store: SharedStore, _clock: Arc<ManualClock>) {
    let r1 = put(&store, "w/a", "1").await;
    put(&store, "other/x", "1").await;
    let r3 = put(&store, "w/b", "1").await;
    let mut watch = store.watch("w/", r1).await.unwrap();
    let first = next_event(&mut watch).await;
    assert_event(&first, EventKind::Put, "w/a", r1);
    assert_eq!((first.kv.value.as_slice(), first.kv.version, first.kv.create_revision), (&b"1"[..], 1, r1));
    assert_event(&next_event(&mut watch).await, EventKind::Put, "w/b", r3);

    let r4 = put(&store, "w/c", "1").await;
    assert_event(&next_event(&mut watch).await, EventKind::Put, "w/c", r4);
    put(&store, "other/y", "1").await;
    let r6 = txn_ok(&store, Txn::new().and_then([Op::delete("w/a"), Op::put("w/b", "2")])).await.revision;
    assert_event(&next_event(&mut watch).await, EventKind::Delete, "w/a", r6);
    let update = next_event(&mut watch).await;
    assert_event(&update, EventKind::Put, "w/b", r6);
    assert_eq!((update.kv.version, update.kv.create_revision), (2, r3));
    assert_quiet(&mut watch).await;
}

async fn watch_from_zero_sees_only_new_changes(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "w/old", "1").await;
    let mut watch = store.watch("w/", 0).await.unwrap();
    let mut everything = store.watch("", 0).await.unwrap();
    assert_quiet(&mut watch).await;
    put(&store, "x/elsewhere", "1").await;
    let rev = put(&store, "w/new", "1").await;
    assert_event(&next_event(&mut watch).await, EventKind::Put, "w/new", rev);
    assert_event(&next_event(&mut everything).await, EventKind::Put, "x/elsewhere", rev - 1);
    assert_event(&next_event(&mut everything).await, EventKind::Put, "w/new", rev);
    assert_quiet(&mut watch).await;
}

async fn watch_sees_lease_expiry_and_revoke(store: SharedStore, clock: Arc<ManualClock>) {
    let short = store.lease_grant(1_000).await.unwrap();
    let long = store.lease_grant(60_000).await.unwrap();
    txn_ok(
        &store,
        Txn::new().and_then([Op::put_with_lease("we/short", "1", short), Op::put_with_lease("we/long", "1", long)]),
    )
    .await;
    let mut watch = store.watch("we/", 0).await.unwrap();
    clock.advance(1_000);
    // Nobody writes: the watch's own poll must reap the lease and report the deletion.
    let event = next_event(&mut watch).await;
    assert_event(&event, EventKind::Delete, "we/short", 2);
    assert_eq!(store.revision().await.unwrap(), 2);
    store.lease_revoke(long).await.unwrap();
    assert_event(&next_event(&mut watch).await, EventKind::Delete, "we/long", 3);
    assert_quiet(&mut watch).await;
}

async fn watch_from_compacted_revision_fails(store: SharedStore, _clock: Arc<ManualClock>) {
    for i in 0..HISTORY + 10 {
        put(&store, &format!("c/{}", i % 3), "v").await;
    }
    let head = store.revision().await.unwrap();
    let oldest = head - HISTORY + 1;
    match store.watch("c/", 1).await {
        Err(StoreError::Compacted { requested, oldest: o }) => assert_eq!((requested, o), (1, oldest)),
        other => panic!("expected Compacted, got {:?}", other.map(|_| "a watch")),
    }
    assert!(matches!(store.watch("c/", oldest - 1).await, Err(StoreError::Compacted { .. })));
    let mut watch = store.watch("c/", oldest).await.unwrap();
    for rev in oldest..=head {
        assert_eq!(next_event(&mut watch).await.kv.mod_revision, rev);
    }
    assert_quiet(&mut watch).await;
}

async fn watch_that_falls_behind_the_history_is_compacted(store: SharedStore, _clock: Arc<ManualClock>) {
    let mut watch = store.watch("", 0).await.unwrap();
    // Store calls never yield, so on this single-threaded test runtime the watch task does not
    // run until `recv` below: by then its cursor has fallen out of the retained history.
    for i in 0..HISTORY + 5 {
        put(&store, &format!("lag/{i}"), "v").await;
    }
    let got = tokio::time::timeout(Duration::from_secs(5), watch.events.recv()).await.unwrap();
    assert_eq!(got, Some(Err(StoreError::Compacted { requested: 1, oldest: 6 })));
    assert_eq!(watch.events.recv().await, None, "a compacted watch ends");
}

async fn watch_from_future_revision_waits_for_it(store: SharedStore, _clock: Arc<ManualClock>) {
    put(&store, "f/a", "1").await;
    let mut watch = store.watch("f/", 3).await.unwrap();
    put(&store, "f/b", "1").await; // revision 2: before the watch's start
    assert_quiet(&mut watch).await;
    put(&store, "f/c", "1").await;
    assert_event(&next_event(&mut watch).await, EventKind::Put, "f/c", 3);
}

async fn changes_catch_a_reader_up_and_report_compaction(store: SharedStore, clock: Arc<ManualClock>) {
    let start = put(&store, "ch/a", "1").await;
    put(&store, "other/x", "1").await;
    put(&store, "ch/b", "1").await;
    txn_ok(&store, Txn::new().and_then([Op::delete("ch/a"), Op::put("ch/b", "2")])).await;
    let lease = store.lease_grant(1_000).await.unwrap();
    txn_ok(&store, Txn::new().and_then([Op::put_with_lease("ch/leased", "1", lease)])).await;
    let (events, upto) = store.changes("ch/", start).await.unwrap();
    let seen: Vec<(EventKind, &str, Revision)> =
        events.iter().map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision)).collect();
    assert_eq!(
        seen,
        [
            (EventKind::Put, "ch/b", 3),
            (EventKind::Delete, "ch/a", 4),
            (EventKind::Put, "ch/b", 4),
            (EventKind::Put, "ch/leased", 5)
        ]
    );
    assert_eq!(upto, 5);
    assert_eq!(String::from_utf8(events[2].kv.value.clone()).unwrap(), "2");
    // Caught up: nothing new. An expired lease's deletion is reported without any write.
    assert_eq!(store.changes("ch/", upto).await.unwrap(), (Vec::new(), upto));
    clock.advance(1_001);
    let (events, after_expiry) = store.changes("ch/", upto).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_event(&events[0], EventKind::Delete, "ch/leased", after_expiry);
    // A reader that fell behind the history is told so, and reads the prefix again.
    for i in 0..HISTORY + 1 {
        put(&store, &format!("ch/{}", i % 2), "v").await;
    }
    assert!(matches!(store.changes("ch/", start).await, Err(StoreError::Compacted { .. })));
}

// ---------------------------------------------------------------------------------------------
// Instantiation
// ---------------------------------------------------------------------------------------------

/// Instantiate every listed test once per backend, as `memory::<name>` and `sqlite::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = Arc::new(ManualClock::new(START_MS));
                    let store: SharedStore = Arc::new(MemoryStore::with_history(clock.clone(), HISTORY));
                    super::$name(store, clock).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let clock = Arc::new(ManualClock::new(START_MS));
                    let options = SqliteOptions { retain_revisions: HISTORY, ..SqliteOptions::default() };
                    let path = dir.path().join("nested").join("mesh.db");
                    let store: SharedStore = Arc::new(SqliteStore::open_with_options(&path, clock.clone(), options).unwrap());
                    super::$name(store, clock).await;
                }
            )*
        }
    };
}

/// The tests that hold on etcd as they are, each against a fresh one-member cluster (so that its
/// revisions start where ours do). Left out, with the etcd-specific tests below instead: the
/// ones that move a manual clock (etcd's leases run on its own clock, in whole seconds), the
/// ones that count on a retained history of 32 revisions (etcd compacts when told), and
/// `duplicate_keys_in_one_txn_apply_in_order` (etcd refuses a key written twice in one
/// transaction; the backend folds such writes into one, so the key's version counts one write).
macro_rules! conformance_etcd {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let member = super::super::etcd::member::Member::start().await;
                    let target = super::super::etcd::EtcdTarget::parse(&member.url("conformance")).unwrap();
                    let store: SharedStore = Arc::new(super::super::etcd::EtcdStore::new(target));
                    super::$name(store, Arc::new(ManualClock::new(START_MS))).await;
                }
            )*
        }
    };
}

conformance_etcd!(
    put_get_tracks_revisions_and_version,
    create_only_with_absent,
    cas_on_mod_revision_loses_to_earlier_writer,
    value_and_version_compares,
    failure_branch_applies_when_compare_fails,
    failed_txn_changes_nothing,
    noop_txns_keep_the_revision,
    delete_then_recreate_resets_create_revision,
    puts_report_what_they_wrote,
    range_by_prefix_is_byte_ordered_with_limit,
    prefix_after_paginates,
    delete_prefix_removes_exactly_the_prefix,
    watch_replays_then_streams_live,
    watch_from_zero_sees_only_new_changes,
    watch_from_future_revision_waits_for_it,
);

conformance!(
    put_get_tracks_revisions_and_version,
    create_only_with_absent,
    cas_on_mod_revision_loses_to_earlier_writer,
    value_and_version_compares,
    failure_branch_applies_when_compare_fails,
    failed_txn_changes_nothing,
    noop_txns_keep_the_revision,
    delete_then_recreate_resets_create_revision,
    duplicate_keys_in_one_txn_apply_in_order,
    puts_report_what_they_wrote,
    range_by_prefix_is_byte_ordered_with_limit,
    prefix_after_paginates,
    delete_prefix_removes_exactly_the_prefix,
    lease_grant_keepalive_revoke,
    keepalive_in_a_txn_renews_only_when_it_commits,
    expired_lease_is_invisible_at_once,
    compares_treat_expired_keys_as_absent,
    watch_replays_then_streams_live,
    watch_from_zero_sees_only_new_changes,
    watch_sees_lease_expiry_and_revoke,
    watch_from_compacted_revision_fails,
    watch_that_falls_behind_the_history_is_compacted,
    watch_from_future_revision_waits_for_it,
    changes_catch_a_reader_up_and_report_compaction,
);
