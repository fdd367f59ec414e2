//! What a swarm's reservations look like at one instant, and the pure questions asked of them:
//! which live reservations a request would conflict with, and, for the git guard, which paths
//! of a commit another agent holds exclusively.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::api::{ReservationMode, ReservationView};
use super::pattern::{PathSegments, Pattern};

/// A stored reservation: what the tools show, and what a retried `reserve` is recognised by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRecord {
    #[serde(flatten)]
    pub view: ReservationView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The TTL it was reserved with, which `renew` gives again unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
}

/// A live reservation with its compiled pattern and its key.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    pub record: ReservationRecord,
    pub pattern: Pattern,
}

impl Held {
    pub fn view(&self) -> &ReservationView {
        &self.record.view
    }

    fn exclusive(&self) -> bool {
        self.view().mode == ReservationMode::Exclusive
    }
}

/// Whether a reservation in `mode` and `held` cannot coexist (given that they overlap).
fn clash(mode: ReservationMode, held: &Held) -> bool {
    mode == ReservationMode::Exclusive || held.exclusive()
}

/// For each requested pattern (by index), the reservations of agents other than `me` that it
/// clashes with, in `held`'s order.
pub fn conflicts<'h>(
    held: &'h [Held],
    me: Option<&str>,
    requested: &[Pattern],
    mode: ReservationMode,
) -> Vec<(usize, &'h Held)> {
    let mut out = Vec::new();
    for (i, pattern) in requested.iter().enumerate() {
        for h in held.iter().filter(|h| Some(h.view().agent_id.as_str()) != me) {
            if clash(mode, h) && pattern.overlaps(&h.pattern) {
                out.push((i, h));
            }
        }
    }
    out
}

/// Other agents' exclusive reservations, indexed by the literal start of their patterns so that
/// a path is tested only against the patterns that could match it: a commit of 1,000 files
/// against 1,000 reservations does a few hash lookups per file, not 1,000 glob matches.
pub struct GuardIndex<'h> {
    by_prefix: HashMap<&'h str, Vec<&'h Held>>,
}

impl<'h> GuardIndex<'h> {
    /// The reservations that block a commit by `me` (`None`: an agent-less committer, blocked by
    /// every exclusive reservation).
    pub fn new(held: &'h [Held], me: Option<&str>) -> Self {
        let mut by_prefix: HashMap<&str, Vec<&Held>> = HashMap::new();
        for h in held.iter().filter(|h| h.exclusive() && Some(h.view().agent_id.as_str()) != me) {
            by_prefix.entry(h.pattern.literal_prefix.as_str()).or_default().push(h);
        }
        Self { by_prefix }
    }

    /// The reservations covering `path`.
    pub fn blocking(&self, path: &str) -> Vec<&'h Held> {
        let mut found = Vec::new();
        if self.by_prefix.is_empty() {
            return found;
        }
        let mut compiled = None;
        let ancestors = std::iter::once("").chain(path.match_indices('/').map(|(i, _)| &path[..i])).chain([path]);
        for prefix in ancestors {
            for h in self.by_prefix.get(prefix).into_iter().flatten() {
                let covered =
                    h.pattern.literal || h.pattern.covers_path(compiled.get_or_insert_with(|| PathSegments::of(path)));
                if covered {
                    found.push(*h);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(agent: &str, path: &str, mode: ReservationMode) -> Held {
        let pattern = Pattern::parse("paths", path).unwrap();
        let view = ReservationView {
            reservation_id: format!("{agent}:{path}"),
            path: pattern.text.clone(),
            mode,
            agent_id: agent.into(),
            agent_name: agent.into(),
            reason: None,
            created_at_ms: 0,
            expires_at_ms: 1,
        };
        Held { key: String::new(), record: ReservationRecord { view, idempotency_key: None, ttl_ms: None }, pattern }
    }

    #[test]
    fn exclusive_clashes_with_anything_shared_only_with_exclusive_and_never_with_oneself() {
        use ReservationMode::*;
        let all = [held("a", "src/**", Exclusive), held("b", "docs/*.md", Shared), held("c", "src/lib.rs", Shared)];
        let ask = |me, path, mode| {
            conflicts(&all, Some(me), &[Pattern::parse("paths", path).unwrap()], mode)
                .iter()
                .map(|(_, h)| h.view().agent_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ask("b", "src/store/sqlite.rs", Exclusive), ["a"]);
        assert_eq!(ask("b", "src/lib.rs", Exclusive), ["a", "c"]);
        assert_eq!(ask("d", "docs/guide.md", Shared), Vec::<String>::new());
        assert_eq!(ask("d", "docs/guide.md", Exclusive), ["b"]);
        assert!(ask("a", "src/x.rs", Exclusive).is_empty());
    }

    #[test]
    fn the_guard_finds_exactly_the_exclusive_reservations_of_others_over_a_path() {
        use ReservationMode::*;
        let all = [
            held("a", "src/store", Exclusive),
            held("a", "**/*.lock", Exclusive),
            held("b", "src/*.rs", Exclusive),
            held("b", "docs", Shared),
            held("me", "tests", Exclusive),
        ];
        let index = GuardIndex::new(&all, Some("me"));
        let who = |path: &str| index.blocking(path).iter().map(|h| h.view().path.clone()).collect::<Vec<_>>();
        assert_eq!(who("src/store/sqlite.rs"), ["src/store"]);
        assert_eq!(who("src/lib.rs"), ["src/*.rs"]);
        assert_eq!(who("Cargo.lock"), ["**/*.lock"]);
        assert!(who("docs/a.md").is_empty(), "shared does not block");
        assert!(who("tests/x.rs").is_empty(), "one's own does not block");
        assert_eq!(who("src/storehouse.rs"), ["src/*.rs"], "src/store covers its files, not its namesakes");
        let nobody = GuardIndex::new(&all, None);
        assert_eq!(nobody.blocking("tests/x.rs").len(), 1);
    }
}
