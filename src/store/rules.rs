//! Transaction rules both backends share: how a compare is evaluated, which leases a
//! transaction uses, the shape of a delete event, and the TTL check.

use super::{Compare, CompareOp, CompareTarget, EventKind, KeyValue, LeaseId, Op, Revision, StoreError, WatchEvent};

/// Whether `cmp` holds against `kv` (`None` = the key is absent or its lease has expired).
///
/// An absent key has version, create and mod revision 0. A value compare against an absent key
/// is always false, whatever the operator, as in etcd: there is no value to compare.
pub(crate) fn compare_holds(cmp: &Compare, kv: Option<&KeyValue>) -> bool {
    let ordering = match (&cmp.target, kv) {
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
        (CompareTarget::Version(v), kv) => kv.map_or(0, |kv| kv.version).cmp(v),
        (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
        (CompareTarget::CreateRevision(r), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
    };
    match cmp.op {
        CompareOp::Equal => ordering.is_eq(),
        CompareOp::NotEqual => ordering.is_ne(),
        CompareOp::Less => ordering.is_lt(),
        CompareOp::Greater => ordering.is_gt(),
    }
}

/// The leases that the `Put`s among `ops` attach keys to or that `ops` keep alive (0 = none is
/// skipped).
pub(crate) fn leases_used(ops: &[Op]) -> impl Iterator<Item = LeaseId> + '_ {
    ops.iter().filter_map(|op| match op {
        Op::Put { lease, .. } | Op::KeepAlive { lease } if *lease != 0 => Some(*lease),
        _ => None,
    })
}

/// The event for a deleted key: as in etcd, only the key and the deletion revision are set.
pub(crate) fn delete_event(key: String, rev: Revision) -> WatchEvent {
    let kv = KeyValue { key, value: Vec::new(), create_revision: 0, mod_revision: rev, version: 0, lease: 0 };
    WatchEvent { kind: EventKind::Delete, kv }
}

pub(crate) fn check_ttl(ttl_ms: i64) -> Result<(), StoreError> {
    if ttl_ms > 0 {
        Ok(())
    } else {
        Err(StoreError::Backend(format!("lease TTL must be positive, got {ttl_ms} ms")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_rules_for_absent_keys() {
        let absent = |target| compare_holds(&Compare { key: "k".into(), op: CompareOp::Equal, target }, None);
        assert!(absent(CompareTarget::Version(0)));
        assert!(absent(CompareTarget::ModRevision(0)));
        assert!(absent(CompareTarget::CreateRevision(0)));
        assert!(!absent(CompareTarget::Value(Vec::new())));
    }
}
