//! Deleting workspaces (soft, restorable for 30 days) and accounts (with a receipt).

use serde_json::json;
use steward_auth::{Permission, Permissions, Role};
use steward_store::{
    AccountStore, ApiToken, AuditFilter, Deleter, Error, Invitation, NewUser, RESTORE_WINDOW_MS, Session,
    TableCount, User,
};

use crate::support::{T0, TestDb, at, save};

async fn user(s: &dyn AccountStore, email: &str) -> User {
    let new = NewUser {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.to_owned(),
        name: Some("Someone".into()),
        password_hash: "hash".into(),
        now: at(T0),
    };
    s.create_user(new).await.unwrap()
}

fn token(id: &str, workspace: &str, user: &str) -> ApiToken {
    ApiToken {
        id: id.to_owned(),
        digest: format!("digest-{id}"),
        workspace_id: workspace.to_owned(),
        user_id: user.to_owned(),
        name: format!("token {id}"),
        permissions: Permissions::of(&[Permission::FlowsRead]),
        created_at: at(T0),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

fn invitation(id: &str, workspace: &str, email: &str, by: &str) -> Invitation {
    Invitation {
        id: id.to_owned(),
        workspace_id: workspace.to_owned(),
        email: email.to_owned(),
        role: Role::Viewer,
        invited_by: by.to_owned(),
        created_at: at(T0),
        expires_at: at(T0 + 1_000_000),
        digest: format!("inv-{id}"),
    }
}

fn session(digest: &str, user: &str) -> Session {
    Session {
        digest: digest.to_owned(),
        user_id: user.to_owned(),
        csrf: "csrf".into(),
        created_at: at(T0),
        expires_at: at(T0 + 1_000_000),
    }
}

fn by_cli() -> Deleter {
    Deleter { actor: "system:cli".into(), source: Some("192.0.2.7".into()) }
}

/// `(table, rows)` of a receipt, in its order.
fn counts(tables: &[TableCount]) -> Vec<(&str, u64)> {
    tables.iter().map(|t| (t.table.as_str(), t.rows)).collect()
}

pub async fn workspaces_are_soft_deleted_and_restored_within_the_window(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    s.create_workspace("acme", "Acme", &ada.id, at(T0)).await.unwrap();
    s.create_workspace("bobs", "Bob's", &bob.id, at(T0)).await.unwrap();
    s.create_token(&token("t1", "acme", &ada.id)).await.unwrap();
    save(s, "acme", "hello", "d1", T0).await;
    save(s, "bobs", "hello", "d1", T0).await;

    let deleted = s.set_workspace_deleted("acme", true, at(T0 + 1)).await.unwrap();
    assert_eq!(deleted.deleted_at, Some(at(T0 + 1)));
    assert_eq!(deleted.restorable_until(), Some(at(T0 + 1 + RESTORE_WINDOW_MS)));
    assert_eq!(s.role("acme", &ada.id).await.unwrap(), None, "no one is a member of a deleted workspace");
    assert!(matches!(s.workspace("acme").await, Err(Error::NotFound(_))));
    assert!(s.workspaces_of(&ada.id).await.unwrap().is_empty());
    assert_eq!(s.deleted_workspaces_of(&ada.id).await.unwrap(), [(deleted.clone(), Role::Owner)]);
    assert!(s.deleted_workspaces_of(&bob.id).await.unwrap().is_empty());
    assert_eq!(s.token_by_digest("digest-t1").await.unwrap(), None, "its tokens do not work");
    assert_eq!(s.startable("acme", "hello").await.unwrap(), None, "its flows start nothing");
    assert!(s.startable("bobs", "hello").await.unwrap().is_some(), "others' flows still start");
    assert!(matches!(s.set_workspace_deleted("acme", true, at(T0 + 2)).await, Err(Error::NotFound(_))));
    let last = s.set_workspace_deleted("bobs", true, at(T0 + 2)).await;
    assert!(matches!(&last, Err(Error::Conflict(m)) if m.contains("this is the last")), "{last:?}");

    // Restoring: not after the window, not twice, not what does not exist.
    let late = s.set_workspace_deleted("acme", false, at(T0 + 1 + RESTORE_WINDOW_MS)).await;
    assert!(matches!(&late, Err(Error::Conflict(m)) if m.contains("30 days")), "{late:?}");
    let restored = s.set_workspace_deleted("acme", false, at(T0 + 3)).await.unwrap();
    assert_eq!(restored.deleted_at, None);
    assert_eq!(s.role("acme", &ada.id).await.unwrap(), Some(Role::Owner));
    assert!(s.token_by_digest("digest-t1").await.unwrap().is_some(), "tokens work again");
    assert!(s.startable("acme", "hello").await.unwrap().is_some());
    assert!(matches!(s.set_workspace_deleted("acme", false, at(T0 + 4)).await, Err(Error::Conflict(_))));
    assert!(matches!(s.set_workspace_deleted("nope", false, at(T0 + 4)).await, Err(Error::NotFound(_))));
    assert!(matches!(s.set_workspace_deleted("nope", true, at(T0 + 4)).await, Err(Error::NotFound(_))));
}

pub async fn deleting_an_account_removes_its_rows_and_records_the_receipt(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    s.create_workspace("acme", "Acme", &bob.id, at(T0)).await.unwrap();
    s.create_workspace("solo", "Ada alone", &ada.id, at(T0)).await.unwrap();
    s.create_workspace("bobs", "Bob's", &bob.id, at(T0)).await.unwrap();
    s.set_member("acme", &ada.id, Role::Editor, at(T0)).await.unwrap();
    s.create_session(&session("s1", &ada.id)).await.unwrap();
    s.create_session(&session("s2", &ada.id)).await.unwrap();
    s.create_session(&session("s3", &bob.id)).await.unwrap();
    s.create_token(&token("t1", "acme", &ada.id)).await.unwrap();
    s.create_token(&token("t2", "solo", &ada.id)).await.unwrap();
    s.create_token(&token("t3", "acme", &bob.id)).await.unwrap();
    // Addressed to Ada (one accepted, one open); sent by Ada (open); sent by Bob to Carol.
    s.create_invitation(&invitation("i1", "acme", "ada@example.com", &bob.id)).await.unwrap();
    s.accept_invitation("inv-i1", &ada, at(T0 + 1)).await.unwrap();
    s.create_invitation(&invitation("i2", "bobs", "ada@example.com", &bob.id)).await.unwrap();
    s.create_invitation(&invitation("i3", "acme", "carol@example.com", &ada.id)).await.unwrap();
    s.create_invitation(&invitation("i4", "acme", "dan@example.com", &bob.id)).await.unwrap();
    let before = s.audit_chain(0, 100).await.unwrap().len();

    let done = s.delete_user(&ada.id, &by_cli(), at(T0 + 10)).await.unwrap();
    let r = &done.receipt;
    assert_eq!(
        (r.subject.as_str(), r.reason.as_str(), r.at),
        (format!("user:{}", ada.id).as_str(), "account deleted", at(T0 + 10))
    );
    assert_eq!(
        counts(&r.tables),
        [("users", 1), ("sessions", 2), ("api_tokens", 2), ("memberships", 2), ("invitations", 3)]
    );
    assert_eq!(r.rows(), 10);
    let kind = r.tables[0].store.as_str();
    assert!(r.tables.iter().all(|t| t.store == kind) && ["sqlite", "postgres"].contains(&kind), "{kind}");
    let parts: Vec<_> = done.per_workspace.iter().map(|(w, p)| (w.as_str(), counts(&p.tables))).collect();
    assert_eq!(
        parts,
        [
            ("acme", vec![("api_tokens", 1), ("memberships", 1), ("invitations", 2)]),
            ("bobs", vec![("api_tokens", 0), ("memberships", 0), ("invitations", 1)]),
            ("solo", vec![("api_tokens", 1), ("memberships", 1), ("invitations", 0)]),
        ]
    );
    assert_eq!(done.workspaces_deleted, ["solo"], "Ada was its only member");

    // Ada is gone; Bob and his workspaces are not.
    assert!(matches!(s.user(&ada.id).await, Err(Error::NotFound(_))));
    assert_eq!(s.user_for_login("ada@example.com").await.unwrap(), None);
    assert_eq!(s.session("s1", at(T0)).await.unwrap(), None);
    assert!(s.session("s3", at(T0)).await.unwrap().is_some());
    assert_eq!(s.token_by_digest("digest-t1").await.unwrap(), None);
    assert!(s.token_by_digest("digest-t3").await.unwrap().is_some());
    let members: Vec<_> = s.members("acme").await.unwrap().into_iter().map(|m| m.email).collect();
    assert_eq!(members, ["bob@example.com"]);
    let open: Vec<_> = s.invitations("acme", at(T0 + 11)).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(open, ["i4"], "Bob's invitation of someone else stays");
    assert!(matches!(s.workspace("solo").await, Err(Error::NotFound(_))));
    assert!(s.workspace("acme").await.is_ok());

    // The receipt is in the audit log, with the deletion: whole without a workspace, each
    // workspace's part in that workspace.
    let chain = s.audit_chain(0, 100).await.unwrap();
    let new: Vec<_> = chain[before..].iter().map(|e| (e.workspace.as_deref(), e.action.as_str())).collect();
    assert_eq!(
        new,
        [
            (None, "data.deleted"),
            (Some("acme"), "data.deleted"),
            (Some("bobs"), "data.deleted"),
            (Some("solo"), "data.deleted"),
            (Some("solo"), "workspace.deleted"),
        ]
    );
    let whole = &chain[before];
    assert_eq!((whole.actor.as_str(), whole.source.as_deref()), ("system:cli", Some("192.0.2.7")));
    assert_eq!(whole.object_id.as_deref(), Some(ada.id.as_str()));
    assert_eq!(whole.details["rows"], json!(10));
    assert_eq!(whole.details["tables"], serde_json::to_value(&r.tables).unwrap());
    let filter = AuditFilter { action: Some("data.deleted".into()), before: None, limit: 10 };
    let in_acme = s.audit("acme", &filter).await.unwrap();
    assert_eq!(in_acme.len(), 1);
    assert_eq!(in_acme[0].details["rows"], json!(4));
    let verified = steward_store::verify_chain(s).await.unwrap().map(|report| report.checked);
    assert_eq!(verified, Ok(chain.len() as u64), "the chain still verifies");

    assert!(matches!(s.delete_user(&ada.id, &by_cli(), at(T0 + 20)).await, Err(Error::NotFound(_))));
}

pub async fn the_only_owner_of_a_shared_workspace_cannot_leave_it_ownerless(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    s.create_workspace("acme", "Acme", &ada.id, at(T0)).await.unwrap();
    s.create_workspace("beta", "Beta", &ada.id, at(T0)).await.unwrap();
    s.create_workspace("gone", "Gone", &ada.id, at(T0)).await.unwrap();
    for w in ["acme", "beta", "gone"] {
        s.set_member(w, &bob.id, Role::Viewer, at(T0)).await.unwrap();
    }
    s.set_workspace_deleted("gone", true, at(T0 + 1)).await.unwrap();
    s.create_session(&session("s1", &ada.id)).await.unwrap();
    let before = s.audit_chain(0, 100).await.unwrap().len();

    let refused = s.delete_user(&ada.id, &by_cli(), at(T0 + 2)).await;
    let Err(Error::Conflict(message)) = refused else { panic!("{refused:?}") };
    assert!(message.contains("acme, beta") && !message.contains("gone"), "{message}");
    assert!(message.contains("owner"), "{message}");
    // Nothing happened.
    assert!(s.user(&ada.id).await.is_ok());
    assert!(s.session("s1", at(T0)).await.unwrap().is_some());
    assert_eq!(s.role("acme", &ada.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(s.audit_chain(0, 100).await.unwrap().len(), before);

    // Once Bob owns them, Ada can go; the workspaces stay with Bob.
    s.set_member("acme", &bob.id, Role::Owner, at(T0 + 3)).await.unwrap();
    s.set_member("beta", &bob.id, Role::Owner, at(T0 + 3)).await.unwrap();
    let done = s.delete_user(&ada.id, &by_cli(), at(T0 + 4)).await.unwrap();
    assert!(done.workspaces_deleted.is_empty());
    assert_eq!(s.role("acme", &bob.id).await.unwrap(), Some(Role::Owner));
    assert!(s.workspace("beta").await.is_ok());
}
