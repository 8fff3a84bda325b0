//! Chat threads: listed by last activity, messages numbered 1, 2, 3 … once each even when
//! written at the same time, nothing visible from another workspace, and transcript pruning
//! that takes only a workspace's old messages and the threads it empties.

use std::collections::BTreeSet;
use std::sync::Arc;

use steward_store::{Error, Thread};

use crate::support::{OTHER, T0, TestDb, WS, at};

fn ids(threads: &[Thread]) -> Vec<&str> {
    threads.iter().map(|t| t.id.as_str()).collect()
}

pub async fn threads_are_listed_by_activity_and_stay_in_their_workspace(db: &TestDb) {
    let s = &db.store;
    let first = s.create_thread(WS, "triage", "Where is my order?", at(T0)).await.unwrap();
    let second = s.create_thread(WS, "triage", "Refund", at(T0 + 1)).await.unwrap();
    let third = s.create_thread(WS, "writer", "A poem", at(T0 + 2)).await.unwrap();
    assert_eq!(
        (first.workspace.as_str(), first.agent.as_str(), first.title.as_str()),
        (WS, "triage", "Where is my order?")
    );
    assert_eq!((first.created_at, first.updated_at), (at(T0), at(T0)));
    assert_eq!(uuid::Uuid::parse_str(&first.id).unwrap().get_version_num(), 7);
    assert_eq!(s.thread(WS, &first.id).await.unwrap(), first);

    let all = s.list_threads(WS, None).await.unwrap();
    assert_eq!(ids(&all), [&third.id, &second.id, &first.id], "the most recently active first");
    let triage = s.list_threads(WS, Some("triage")).await.unwrap();
    assert_eq!(ids(&triage), [&second.id, &first.id]);
    assert!(s.list_threads(WS, Some("nobody")).await.unwrap().is_empty());

    // A message makes the oldest thread the most recent.
    s.add_message(WS, &first.id, "hello?", "run-1", at(T0 + 10)).await.unwrap();
    let all = s.list_threads(WS, None).await.unwrap();
    assert_eq!(ids(&all), [&first.id, &third.id, &second.id]);
    assert_eq!(all[0].updated_at, at(T0 + 10));

    // Another workspace sees none of it and changes none of it.
    assert!(s.list_threads(OTHER, None).await.unwrap().is_empty());
    assert!(matches!(s.thread(OTHER, &first.id).await, Err(Error::NotFound(_))));
    assert!(matches!(s.thread_messages(OTHER, &first.id).await, Err(Error::NotFound(_))));
    let add = s.add_message(OTHER, &first.id, "sneaky", "run-x", at(T0 + 11)).await;
    assert!(matches!(add, Err(Error::NotFound(_))), "{add:?}");
    assert!(!s.delete_thread(OTHER, &first.id).await.unwrap());
    assert_eq!(s.prune_transcripts(OTHER, at(T0 + 1000)).await.unwrap(), 0);
    let messages = s.thread_messages(WS, &first.id).await.unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(s.thread(WS, &first.id).await.unwrap().updated_at, at(T0 + 10));
    assert!(matches!(s.thread(WS, "no-such-thread").await, Err(Error::NotFound(_))));
    let add = s.add_message(WS, "no-such-thread", "x", "run-x", at(T0)).await;
    assert!(matches!(add, Err(Error::NotFound(_))), "{add:?}");
}

pub async fn messages_are_numbered_in_order_and_move_the_thread(db: &TestDb) {
    let s = &db.store;
    let thread = s.create_thread(WS, "triage", "Help", at(T0)).await.unwrap();
    assert!(s.thread_messages(WS, &thread.id).await.unwrap().is_empty(), "a new thread has none");
    let mut written = Vec::new();
    for n in 1..=3 {
        let m = s
            .add_message(WS, &thread.id, &format!("message {n} ünï"), &format!("run-{n}"), at(T0 + n * 100))
            .await
            .unwrap();
        assert_eq!((m.seq, m.thread_id.as_str(), m.created_at), (n, thread.id.as_str(), at(T0 + n * 100)));
        assert_eq!(s.thread(WS, &thread.id).await.unwrap().updated_at, at(T0 + n * 100));
        written.push(m);
    }
    let read = s.thread_messages(WS, &thread.id).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(read[2].content, "message 3 ünï");
    assert_eq!(read[2].run_id, "run-3");
    assert_eq!(s.thread(WS, &thread.id).await.unwrap().created_at, at(T0), "creation time stays");
    // Numbering is per thread.
    let other = s.create_thread(WS, "triage", "Another", at(T0)).await.unwrap();
    assert_eq!(s.add_message(WS, &other.id, "first", "run-9", at(T0)).await.unwrap().seq, 1);
}

pub async fn deleting_a_thread_removes_its_messages(db: &TestDb) {
    let s = &db.store;
    let canary = format!("message-canary-{}", uuid::Uuid::now_v7().simple());
    let thread = s.create_thread(WS, "triage", "Doomed", at(T0)).await.unwrap();
    let kept = s.create_thread(WS, "triage", "Kept", at(T0)).await.unwrap();
    s.add_message(WS, &thread.id, &canary, "run-1", at(T0 + 1)).await.unwrap();
    s.add_message(WS, &thread.id, "more", "run-2", at(T0 + 2)).await.unwrap();
    s.add_message(WS, &kept.id, "stays", "run-3", at(T0 + 3)).await.unwrap();

    assert!(s.delete_thread(WS, &thread.id).await.unwrap());
    assert!(matches!(s.thread(WS, &thread.id).await, Err(Error::NotFound(_))));
    assert!(matches!(s.thread_messages(WS, &thread.id).await, Err(Error::NotFound(_))));
    assert!(db.scan(&canary).await.is_empty(), "the messages went with the thread");
    assert!(!s.delete_thread(WS, &thread.id).await.unwrap(), "already gone");
    assert_eq!(s.thread_messages(WS, &kept.id).await.unwrap().len(), 1);
    assert_eq!(ids(&s.list_threads(WS, None).await.unwrap()), [&kept.id]);
}

pub async fn concurrent_messages_get_distinct_numbers(db: &TestDb) {
    let thread = db.store.create_thread(WS, "triage", "Busy", at(T0)).await.unwrap();
    let n = 16;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = Arc::clone(&db.store);
            let id = thread.id.clone();
            tokio::spawn(async move {
                store.add_message(WS, &id, &format!("m{i}"), &format!("run-{i}"), at(T0 + i)).await.unwrap()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for task in tasks {
        assert!(seqs.insert(task.await.unwrap().seq), "a number was given twice");
    }
    assert_eq!(seqs, (1..=n).collect::<BTreeSet<i64>>());
    let read = db.store.thread_messages(WS, &thread.id).await.unwrap();
    assert_eq!(read.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let contents: BTreeSet<&str> = read.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents.len(), 16, "every message kept");
}

pub async fn pruning_transcripts_takes_old_messages_and_emptied_threads(db: &TestDb) {
    let s = &db.store;
    let cutoff = T0 + 50;
    // Old and recent messages; one exactly at the cutoff, which stays.
    let mixed = s.create_thread(WS, "triage", "Mixed", at(T0)).await.unwrap();
    for (content, time) in [("old 1", T0), ("old 2", T0 + 1), ("at the cutoff", cutoff), ("new", T0 + 100)] {
        s.add_message(WS, &mixed.id, content, "run", at(time)).await.unwrap();
    }
    // Only old messages: the thread goes with them.
    let stale = s.create_thread(WS, "triage", "Stale", at(T0)).await.unwrap();
    s.add_message(WS, &stale.id, "old 3", "run", at(T0 + 2)).await.unwrap();
    // Just created, its first message not written yet: stays.
    let fresh = s.create_thread(WS, "triage", "Fresh", at(T0 + 200)).await.unwrap();
    // Another workspace's old messages: not this workspace's to prune.
    let elsewhere = s.create_thread(OTHER, "triage", "Elsewhere", at(T0)).await.unwrap();
    s.add_message(OTHER, &elsewhere.id, "old elsewhere", "run", at(T0)).await.unwrap();

    assert_eq!(s.prune_transcripts(WS, at(cutoff)).await.unwrap(), 3);
    let left: Vec<(i64, String)> =
        s.thread_messages(WS, &mixed.id).await.unwrap().into_iter().map(|m| (m.seq, m.content)).collect();
    assert_eq!(left, [(3, "at the cutoff".to_owned()), (4, "new".to_owned())], "numbers stay as they were");
    assert!(matches!(s.thread(WS, &stale.id).await, Err(Error::NotFound(_))), "emptied: gone");
    assert!(s.thread(WS, &fresh.id).await.is_ok(), "new and empty: stays");
    assert_eq!(s.thread_messages(OTHER, &elsewhere.id).await.unwrap().len(), 1);
    let listed = s.list_threads(WS, None).await.unwrap();
    assert_eq!(ids(&listed), [&fresh.id, &mixed.id]);
    // The next message continues the numbering.
    assert_eq!(s.add_message(WS, &mixed.id, "later", "run", at(T0 + 300)).await.unwrap().seq, 5);

    assert_eq!(s.prune_transcripts(WS, at(cutoff)).await.unwrap(), 0, "nothing left to prune");
    assert_eq!(s.prune_transcripts(OTHER, at(cutoff)).await.unwrap(), 1);
    assert!(matches!(s.thread(OTHER, &elsewhere.id).await, Err(Error::NotFound(_))));
}

/// More old messages than one pruning batch holds: all go, in several transactions.
pub async fn pruning_goes_on_past_one_batch(db: &TestDb) {
    let s = &db.store;
    let thread = s.create_thread(WS, "triage", "Long", at(T0)).await.unwrap();
    let n = 520;
    for i in 0..n {
        s.add_message(WS, &thread.id, "m", "run", at(T0 + i)).await.unwrap();
    }
    s.add_message(WS, &thread.id, "recent", "run", at(T0 + 10_000)).await.unwrap();
    assert_eq!(s.prune_transcripts(WS, at(T0 + 5_000)).await.unwrap(), u64::try_from(n).unwrap());
    let left = s.thread_messages(WS, &thread.id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].seq, left[0].content.as_str()), (n + 1, "recent"));
}
