//! Transactions etcd accepts: etcd refuses a transaction that writes a key twice or puts a key
//! inside a range it deletes, where our stores apply the ops in order. [`plan`] folds a branch
//! into writes etcd accepts with the same end state.

use crate::store::{prefix_end, LeaseId, Op};

/// One write of a planned transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    /// `[start, end)`, or the key `start` alone.
    Delete {
        start: String,
        end: Option<String>,
    },
    KeepAlive(LeaseId),
}

/// Fold a branch's ops into writes etcd accepts (no key written twice, no put inside a range
/// deleted in the same transaction) with the same end state: later ops win over earlier ones,
/// and a delete range keeps out the keys put after it, which the put then sets.
pub(super) fn plan(ops: &[Op]) -> Vec<Step> {
    let mut puts: std::collections::BTreeMap<String, (Vec<u8>, LeaseId)> = Default::default();
    let mut deletes: Vec<(String, Option<String>)> = Vec::new();
    let mut renew = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, value, lease } => {
                puts.insert(key.clone(), (value.clone(), *lease));
            }
            Op::Delete { key } => {
                puts.remove(key);
                deletes.push((key.clone(), None));
            }
            Op::DeletePrefix { prefix } => {
                let end = prefix_end(prefix);
                puts.retain(|k, _| !(k.as_str() >= prefix.as_str() && k.as_str() < end.as_str()));
                deletes.push((prefix.clone(), Some(end)));
            }
            Op::KeepAlive { lease } => renew.push(*lease),
        }
    }
    let mut steps = Vec::new();
    let mut deleted_keys = std::collections::BTreeSet::new();
    for (start, end) in deletes {
        match end {
            None if puts.contains_key(&start) => {}
            None => {
                if deleted_keys.insert(start.clone()) {
                    steps.push(Step::Delete { start, end: None });
                }
            }
            Some(end) => steps.extend(split_around(&start, &end, puts.keys())),
        }
    }
    steps.extend(puts.into_iter().map(|(key, (value, lease))| Step::Put { key, value, lease }));
    steps.extend(renew.into_iter().map(Step::KeepAlive));
    steps
}

/// The range `[start, end)` less the keys `keep`, as delete steps.
fn split_around<'a>(start: &str, end: &str, keep: impl Iterator<Item = &'a String>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut from = start.to_string();
    for key in keep.filter(|k| k.as_str() >= start && k.as_str() < end) {
        if from.as_str() < key.as_str() {
            steps.push(Step::Delete { start: from.clone(), end: Some(key.clone()) });
        }
        from = format!("{key}\0");
    }
    steps.push(Step::Delete { start: from, end: Some(end.to_string()) });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_inside_a_deleted_prefix_splits_the_delete_and_the_last_write_wins() {
        let ops = [
            Op::delete_prefix("s/"),
            Op::put("s/config", "c"),
            Op::put("t", "1"),
            Op::put("t", "2"),
            Op::delete("u"),
            Op::put("u", "3"),
        ];
        let steps = plan(&ops);
        let end = prefix_end("s/");
        assert_eq!(
            steps,
            vec![
                Step::Delete { start: "s/".into(), end: Some("s/config".into()) },
                Step::Delete { start: "s/config\0".into(), end: Some(end) },
                Step::Put { key: "s/config".into(), value: b"c".to_vec(), lease: 0 },
                Step::Put { key: "t".into(), value: b"2".to_vec(), lease: 0 },
                Step::Put { key: "u".into(), value: b"3".to_vec(), lease: 0 },
            ]
        );
        let steps = plan(&[Op::put("k", "v"), Op::delete("k")]);
        assert_eq!(steps, vec![Step::Delete { start: "k".into(), end: None }]);
    }
}
