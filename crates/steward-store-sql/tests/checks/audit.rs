//! The hash-chained audit log: appends, listing, and detection of tampering.

use serde_json::json;
use steward_store::{AuditFilter, AuditStore, BrokenLink, NewAuditEvent, Verifier};

use crate::support::{T0, TestDb, at};

fn event(workspace: Option<&str>, action: &str, n: i64) -> NewAuditEvent {
    NewAuditEvent {
        workspace: workspace.map(str::to_owned),
        actor: "user:ada".into(),
        action: action.to_owned(),
        object_type: "flow".into(),
        object_id: Some(format!("flow-{n}")),
        source: Some("192.0.2.1".into()),
        details: json!({ "n": n, "note": "ünï \"quoted\"" }),
        now: at(T0 + n),
    }
}

/// Verifies the whole chain page by page, as `steward audit verify` does.
async fn verify(s: &dyn AuditStore) -> Result<u64, BrokenLink> {
    let mut v = Verifier::default();
    loop {
        let page = s.audit_chain(v.last_seq(), 2).await.unwrap();
        if page.is_empty() {
            return Ok(v.checked);
        }
        page.iter().try_for_each(|e| v.check(e))?;
    }
}

pub async fn entries_chain_and_list_per_workspace(db: &TestDb) {
    let s = &*db.store;
    let first = s.append_audit(event(Some("acme"), "flow.applied", 1)).await.unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, steward_store::GENESIS));
    s.append_audit(event(None, "login.succeeded", 2)).await.unwrap();
    s.append_audit(event(Some("other"), "flow.applied", 3)).await.unwrap();
    let last = s.append_audit(event(Some("acme"), "run.cancelled", 4)).await.unwrap();
    assert_eq!(last.seq, 4);
    assert_eq!(verify(s).await, Ok(4));

    let page = |action: Option<&str>, before: Option<i64>| AuditFilter {
        action: action.map(str::to_owned),
        before,
        limit: 10,
    };
    let acme = s.audit("acme", &page(None, None)).await.unwrap();
    assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 1], "newest first, own workspace only");
    assert_eq!(acme[1], first);
    assert_eq!(acme[1].details, json!({ "n": 1, "note": "ünï \"quoted\"" }));
    let applied = s.audit("acme", &page(Some("flow.applied"), None)).await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(s.audit("acme", &page(None, Some(4))).await.unwrap().len(), 1);
}

pub async fn concurrent_appends_keep_one_chain(db: &TestDb) {
    let other = db.reopen().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move { store.append_audit(event(Some("acme"), "x", i)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(verify(&*db.store).await, Ok(40));
}

pub async fn tampering_is_detected_at_the_first_broken_link(db: &TestDb) {
    let s = &*db.store;
    for n in 1..=6 {
        s.append_audit(event(Some("acme"), "flow.applied", n)).await.unwrap();
    }
    assert_eq!(verify(s).await, Ok(6));

    assert_eq!(db.tamper("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 5").await, 1);
    let broken = verify(s).await.unwrap_err();
    assert_eq!(broken.seq, 5);
    assert!(broken.problem.contains("edited"), "{}", broken.problem);

    assert_eq!(db.tamper("DELETE FROM audit_log WHERE seq = 3").await, 1);
    let broken = verify(s).await.unwrap_err();
    assert_eq!(broken.seq, 4, "the entry after the gap");
    assert!(broken.problem.contains("expected entry 3"), "{}", broken.problem);

    // Re-inserting a copy of an entry with forged content breaks the chain too.
    db.tamper(
        "INSERT INTO audit_log (seq, at, workspace_id, actor, action, object_type, object_id, source, \
         details, prev_hash, hash) SELECT 3, at, workspace_id, actor, 'flow.deleted', object_type, object_id, \
         source, details, prev_hash, hash FROM audit_log WHERE seq = 2",
    )
    .await;
    assert_eq!(verify(s).await.unwrap_err().seq, 3);
}
