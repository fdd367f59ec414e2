//! Read scopes: the reads of one report share one snapshot, where the backend can.
//!
//! A report such as `swarm_status` reads a dozen keys and ranges. On SQLite each read is a
//! transaction of its own, and beginning and ending one (taking the WAL's read mark, reading the
//! revision) costs more than the read. Inside [`read_scope`] a backend may keep the snapshot its
//! first read opened and serve the scope's later reads from it: fewer transactions, and a view
//! that is consistent across the reads, not just within each.
//!
//! A scope never hides a write: any write through the store ends the scope's snapshot first, so
//! a read after it sees it (and a read-decide-commit loop re-reads afresh after a failed
//! compare). Nor does it hold a connection while it waits: the snapshot also ends whenever the
//! scope's future yields, and its next read opens a new one. So the snapshot spans the reads the
//! scope makes without waiting (on SQLite every read runs inline, so a report's reads do), and a
//! backend may keep it on a connection others need (SQLite's writer, whose page cache survives
//! this process's writes) without anybody waiting on the scope. It is for calls that read and
//! answer; a call that waits for somebody else's change gains nothing from one.

use std::any::Any;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::pin;

/// What a backend keeps for the scope: its open snapshot, if any.
pub(crate) type Slot = Option<Box<dyn Any + Send>>;

tokio::task_local! {
    static SCOPE: RefCell<Slot>;
}

/// Run `f` with its store reads in one snapshot where the backend supports it. Nested scopes
/// share the outer one. The snapshot ends when `f` does, at the first write, and whenever `f`
/// waits.
pub async fn read_scope<F: Future>(f: F) -> F::Output {
    if SCOPE.try_with(|_| ()).is_ok() {
        return f.await;
    }
    let mut f = pin!(f);
    let ends_at_waits = poll_fn(move |cx| {
        let polled = f.as_mut().poll(cx);
        if polled.is_pending() {
            end_snapshot();
        }
        polled
    });
    SCOPE.scope(RefCell::new(None), ends_at_waits).await
}

/// `f` on the current scope's slot; `None` outside a scope (and on a blocking thread).
pub(crate) fn with_slot<R>(f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
    SCOPE.try_with(|cell| cell.try_borrow_mut().ok().map(|mut slot| f(&mut slot))).ok().flatten()
}

/// End the current scope's snapshot, if any, so that the next read sees the store as it is now:
/// called before every write, and by a loop that reads again after a failed attempt.
pub fn end_snapshot() {
    with_slot(|slot| *slot = None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_exists_only_inside_a_scope_and_ends_with_it() {
        assert!(with_slot(|_| ()).is_none());
        read_scope(async {
            with_slot(|slot| *slot = Some(Box::new(7u32)));
            read_scope(async {
                let seen = with_slot(|slot| slot.as_ref().and_then(|b| b.downcast_ref::<u32>()).copied());
                assert_eq!(seen, Some(Some(7)), "a nested scope shares the outer slot");
            })
            .await;
            end_snapshot();
            assert_eq!(with_slot(|slot| slot.is_none()), Some(true));
        })
        .await;
        assert!(with_slot(|_| ()).is_none());
    }

    #[tokio::test]
    async fn a_scope_that_waits_ends_its_snapshot() {
        read_scope(async {
            with_slot(|slot| *slot = Some(Box::new(7u32)));
            tokio::task::yield_now().await;
            assert_eq!(with_slot(|slot| slot.is_none()), Some(true), "a wait ends the snapshot");
        })
        .await;
    }
}
