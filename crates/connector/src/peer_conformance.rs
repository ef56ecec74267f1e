//! The one conformance suite of [`PeerStore`] implementations, as [`crate::conformance`]
//! is for sources and sinks: an implementation provides a [`PeerStoreHarness`] (handles
//! on one fresh store; each call to `store` another handle, as another hub instance
//! opens it) and expands [`peer_store_conformance_tests!`]. The functions panic on
//! failure, like assertions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::peer::{MAX_VALUE, PeerStore, PeerStoreErrorKind};

/// Handles on one fresh, empty store.
#[async_trait]
pub trait PeerStoreHarness: Send + Sync {
    /// Another handle on the same store: another instance of the hub.
    async fn store(&self) -> Arc<dyn PeerStore>;
    /// Called once the check passed (drops a test database).
    async fn finish(&self) {}
}

/// A value put is read back by any handle, replaced by a later put, and kept apart
/// from the same key in another namespace.
pub async fn put_and_get_across_handles(h: &dyn PeerStoreHarness) {
    let (a, b) = (h.store().await, h.store().await);
    assert_eq!(a.get("box/seen/P1", "f.csv").await.unwrap(), None);
    a.put("box/seen/P1", "f.csv", "one").await.unwrap();
    assert_eq!(
        b.get("box/seen/P1", "f.csv").await.unwrap().as_deref(),
        Some("one")
    );
    b.put("box/seen/P1", "f.csv", "two").await.unwrap();
    assert_eq!(
        a.get("box/seen/P1", "f.csv").await.unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(a.get("box/seen/P2", "f.csv").await.unwrap(), None);
    // A value may hold any text, quotes and marks included.
    let odd = "it's ? 'x' %_ \" \\ é";
    a.put("box/seen/P2", "f.csv", odd).await.unwrap();
    assert_eq!(
        b.get("box/seen/P2", "f.csv").await.unwrap().as_deref(),
        Some(odd)
    );
}

/// `insert_if_absent` writes only into an empty key and says whether it did.
pub async fn insert_if_absent_keeps_the_first(h: &dyn PeerStoreHarness) {
    let (a, b) = (h.store().await, h.store().await);
    assert!(a.insert_if_absent("ns", "k", "first").await.unwrap());
    assert!(!b.insert_if_absent("ns", "k", "second").await.unwrap());
    assert_eq!(a.get("ns", "k").await.unwrap().as_deref(), Some("first"));
    assert!(b.insert_if_absent("other", "k", "second").await.unwrap());
}

/// `list` gives a namespace's keys that start with the prefix, taken literally (no
/// pattern characters), in key order.
pub async fn list_by_prefix(h: &dyn PeerStoreHarness) {
    let s = h.store().await;
    for k in ["b/2", "a/1", "b/1", "b_x", "b%y", "c"] {
        s.put("ns", k, &format!("v{k}")).await.unwrap();
    }
    s.put("ns2", "b/9", "elsewhere").await.unwrap();
    let keys = |v: Vec<(String, String)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(s.list("ns", "b/").await.unwrap()), ["b/1", "b/2"]);
    assert_eq!(keys(s.list("ns", "b_").await.unwrap()), ["b_x"]);
    assert_eq!(keys(s.list("ns", "b%").await.unwrap()), ["b%y"]);
    assert_eq!(
        keys(s.list("ns", "").await.unwrap()),
        ["a/1", "b%y", "b/1", "b/2", "b_x", "c"]
    );
    let all = s.list("ns", "a").await.unwrap();
    assert_eq!(all, [("a/1".to_owned(), "va/1".to_owned())]);
    assert!(s.list("empty", "").await.unwrap().is_empty());
}

/// `delete` removes a key; with `only_if`, only while it holds that value.
pub async fn delete_and_delete_if(h: &dyn PeerStoreHarness) {
    let (a, b) = (h.store().await, h.store().await);
    a.put("ns", "k", "held 1").await.unwrap();
    assert!(!b.delete("ns", "k", Some("held 0")).await.unwrap());
    assert_eq!(a.get("ns", "k").await.unwrap().as_deref(), Some("held 1"));
    assert!(b.delete("ns", "k", Some("held 1")).await.unwrap());
    assert_eq!(a.get("ns", "k").await.unwrap(), None);
    a.put("ns", "k", "x").await.unwrap();
    assert!(b.delete("ns", "k", None).await.unwrap());
    assert!(!b.delete("ns", "k", None).await.unwrap());
}

/// `delete_older_than` removes what was last put before the time, in that namespace
/// only; putting a key again makes it young.
pub async fn delete_older_than_forgets_old_entries(h: &dyn PeerStoreHarness) {
    let s = h.store().await;
    s.put("ns", "old", "1").await.unwrap();
    s.put("ns", "refreshed", "1").await.unwrap();
    s.put("other", "old", "1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cut = Utc::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.put("ns", "new", "1").await.unwrap();
    s.put("ns", "refreshed", "2").await.unwrap();
    assert_eq!(s.delete_older_than("ns", cut).await.unwrap(), 1);
    assert_eq!(s.get("ns", "old").await.unwrap(), None);
    assert!(s.get("ns", "new").await.unwrap().is_some());
    assert_eq!(
        s.get("ns", "refreshed").await.unwrap().as_deref(),
        Some("2")
    );
    assert!(s.get("other", "old").await.unwrap().is_some());
    assert_eq!(s.delete_older_than("ns", cut).await.unwrap(), 0);
}

/// A sequence counts from 1 per namespace and goes on from any handle.
pub async fn sequence_counts_per_namespace(h: &dyn PeerStoreHarness) {
    let (a, b) = (h.store().await, h.store().await);
    assert_eq!(a.next_in_sequence("solis/import/059").await.unwrap(), 1);
    assert_eq!(a.next_in_sequence("solis/import/059").await.unwrap(), 2);
    assert_eq!(b.next_in_sequence("solis/import/059").await.unwrap(), 3);
    assert_eq!(b.next_in_sequence("solis/import/062").await.unwrap(), 1);
    assert_eq!(a.next_in_sequence("solis/import/059").await.unwrap(), 4);
}

/// Values past the limit and empty namespaces are refused as invalid calls.
pub async fn limits_are_refused(h: &dyn PeerStoreHarness) {
    let s = h.store().await;
    let big = "x".repeat(MAX_VALUE + 1);
    let e = s.put("ns", "k", &big).await.unwrap_err();
    assert_eq!(e.kind, PeerStoreErrorKind::Invalid);
    assert!(
        !e.to_string().contains("xxxx"),
        "the value is not told: {e}"
    );
    let e = s.insert_if_absent("", "k", "v").await.unwrap_err();
    assert_eq!(e.kind, PeerStoreErrorKind::Invalid);
    assert_eq!(s.get("ns", "k").await.unwrap(), None);
    s.put("ns", "k", &"y".repeat(MAX_VALUE)).await.unwrap();
}

/// How many tasks race, each on a handle of its own, in the concurrent checks.
const RACERS: usize = 8;

/// Tasks on several handles race `insert_if_absent` on the same keys: each key has
/// exactly one winner, and the store holds the winner's value.
pub async fn concurrent_insert_if_absent_has_one_winner(h: &dyn PeerStoreHarness) {
    const KEYS: usize = 20;
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let s = h.store().await;
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for k in 0..KEYS {
                let key = format!("evenement-{k}");
                if s.insert_if_absent("race", &key, &format!("racer {racer}"))
                    .await
                    .expect("insert_if_absent")
                {
                    won.push(key);
                }
                tokio::task::yield_now().await;
            }
            (racer, won)
        }));
    }
    let mut winners: HashMap<String, Vec<usize>> = HashMap::new();
    for t in tasks {
        let (racer, won) = t.await.expect("racer task");
        for k in won {
            winners.entry(k).or_default().push(racer);
        }
    }
    assert_eq!(winners.len(), KEYS, "every key has a winner: {winners:?}");
    let s = h.store().await;
    for (k, w) in winners {
        assert_eq!(w.len(), 1, "{k} won by {w:?}");
        assert_eq!(
            s.get("race", &k).await.unwrap(),
            Some(format!("racer {}", w[0])),
            "{k} holds its winner's value"
        );
    }
}

/// Tasks on several handles draw from one sequence at once: no number twice, none
/// skipped.
pub async fn concurrent_sequence_never_repeats(h: &dyn PeerStoreHarness) {
    const DRAWS: usize = 25;
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let s = h.store().await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..DRAWS {
                got.push(
                    s.next_in_sequence("solis/import/059")
                        .await
                        .expect("next_in_sequence"),
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.expect("drawing task");
        // One caller's numbers only grow.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        all.extend(got);
    }
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a number was given twice");
    let want: BTreeSet<u64> = (1..=(RACERS * DRAWS) as u64).collect();
    assert_eq!(distinct, want);
}

/// Expands to one `#[tokio::test]` per check. `$make` is an async expression giving
/// `Option<harness>` (`None`: the engine is not there and the harness said why).
#[macro_export]
macro_rules! peer_store_conformance_tests {
    ($make:expr) => {
        $crate::peer_store_conformance_tests!(@test $make;
            put_and_get_across_handles,
            insert_if_absent_keeps_the_first,
            list_by_prefix,
            delete_and_delete_if,
            delete_older_than_forgets_old_entries,
            sequence_counts_per_namespace,
            limits_are_refused,
            concurrent_insert_if_absent_has_one_winner,
            concurrent_sequence_never_repeats);
    };
    (@test $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(h) = $make.await else { return };
                $crate::peer_conformance::$name(&h).await;
                $crate::peer_conformance::PeerStoreHarness::finish(&h).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::MemoryPeerStore;

    struct Memory(MemoryPeerStore);

    #[async_trait]
    impl PeerStoreHarness for Memory {
        async fn store(&self) -> Arc<dyn PeerStore> {
            Arc::new(self.0.clone())
        }
    }

    async fn memory() -> Option<Memory> {
        Some(Memory(MemoryPeerStore::new()))
    }

    crate::peer_store_conformance_tests!(memory());
}
