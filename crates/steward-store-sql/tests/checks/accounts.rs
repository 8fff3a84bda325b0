//! Users, workspaces, members, invitations, sessions and API tokens.

use steward_auth::{Permission, Permissions, Role};
use steward_store::{AccountStore, ApiToken, Error, Invitation, NewUser, Session, User};

use crate::support::{T0, TestDb, at};

async fn user(s: &dyn AccountStore, email: &str) -> User {
    let new = NewUser {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.to_owned(),
        name: Some("Ada".into()),
        password_hash: format!("hash of {email}"),
        now: at(T0),
    };
    s.create_user(new).await.unwrap()
}

fn token(id: &str, workspace: &str, user: &str, expires: Option<i64>) -> ApiToken {
    ApiToken {
        id: id.to_owned(),
        digest: format!("digest-{id}"),
        workspace_id: workspace.to_owned(),
        user_id: user.to_owned(),
        name: format!("token {id}"),
        permissions: Permissions::of(&[Permission::RunsRead, Permission::FlowsRead]),
        created_at: at(T0),
        expires_at: expires.map(at),
        last_used_at: None,
        revoked_at: None,
    }
}

pub async fn users_have_unique_case_insensitive_emails(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.count_users().await.unwrap(), 0);
    let ada = user(s, " Ada@Example.com ").await;
    assert_eq!(ada.email, "ada@example.com");
    let again = NewUser {
        id: "other".into(),
        email: "ADA@example.com".into(),
        name: None,
        password_hash: "x".into(),
        now: at(T0),
    };
    assert!(matches!(s.create_user(again).await, Err(Error::Conflict(_))));
    let (found, hash) = s.user_for_login("ada@EXAMPLE.com").await.unwrap().unwrap();
    assert_eq!((found, hash.as_str()), (ada.clone(), "hash of  Ada@Example.com "));
    assert_eq!(s.user_for_login("bob@example.com").await.unwrap(), None);
    assert_eq!(s.user(&ada.id).await.unwrap(), ada);
    assert!(matches!(s.user("missing").await, Err(Error::NotFound(_))));
    assert_eq!(s.count_users().await.unwrap(), 1);
}

pub async fn workspaces_members_and_the_last_owner(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    let ws = s.create_workspace("acme", "Acme", &ada.id, at(T0)).await.unwrap();
    assert_eq!(ws.name, "Acme");
    assert!(matches!(s.create_workspace("acme", "Again", &bob.id, at(T0)).await, Err(Error::Conflict(_))));
    s.create_workspace("bobs", "Bob's", &bob.id, at(T0)).await.unwrap();
    assert_eq!(s.role("acme", &ada.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(s.role("acme", &bob.id).await.unwrap(), None);
    assert_eq!(s.role("bobs", &ada.id).await.unwrap(), None);

    // The only owner can neither leave nor be demoted.
    assert!(matches!(s.set_member("acme", &ada.id, Role::Admin, at(T0)).await, Err(Error::Conflict(_))));
    assert!(matches!(s.remove_member("acme", &ada.id, at(T0)).await, Err(Error::Conflict(_))));
    s.set_member("acme", &bob.id, Role::Viewer, at(T0 + 1)).await.unwrap();
    assert_eq!(s.role("acme", &bob.id).await.unwrap(), Some(Role::Viewer));
    s.set_member("acme", &bob.id, Role::Owner, at(T0 + 2)).await.unwrap();
    s.set_member("acme", &ada.id, Role::Admin, at(T0 + 3)).await.unwrap();
    let members = s.members("acme").await.unwrap();
    let roles: Vec<_> = members.iter().map(|m| (m.email.as_str(), m.role)).collect();
    assert_eq!(roles, [("ada@example.com", Role::Admin), ("bob@example.com", Role::Owner)]);
    let mine: Vec<_> = s.workspaces_of(&bob.id).await.unwrap().into_iter().map(|(w, r)| (w.id, r)).collect();
    assert_eq!(mine, [("acme".to_owned(), Role::Owner), ("bobs".to_owned(), Role::Owner)]);

    // Removing a member revokes their tokens in that workspace only.
    s.create_token(&token("t1", "acme", &ada.id, None)).await.unwrap();
    s.remove_member("acme", &ada.id, at(T0 + 4)).await.unwrap();
    assert_eq!(s.role("acme", &ada.id).await.unwrap(), None);
    assert_eq!(s.token_by_digest("digest-t1").await.unwrap().unwrap().revoked_at, Some(at(T0 + 4)));
    assert!(matches!(s.remove_member("acme", &ada.id, at(T0)).await, Err(Error::NotFound(_))));
    assert!(matches!(s.workspace("nope").await, Err(Error::NotFound(_))));
}

pub async fn invitations_are_used_once_by_the_invited_address(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    let eve = user(s, "eve@example.com").await;
    s.create_workspace("acme", "Acme", &ada.id, at(T0)).await.unwrap();
    let invite = |id: &str, email: &str, expires: i64| Invitation {
        id: id.to_owned(),
        workspace_id: "acme".into(),
        email: email.to_owned(),
        role: Role::Editor,
        invited_by: ada.id.clone(),
        created_at: at(T0),
        expires_at: at(expires),
        digest: format!("inv-{id}"),
    };
    s.create_invitation(&invite("i1", "Bob@example.com", T0 + 100)).await.unwrap();
    s.create_invitation(&invite("i2", "bob@example.com", T0 + 10)).await.unwrap();
    s.create_invitation(&invite("i3", "bob@example.com", T0 + 100)).await.unwrap();
    assert_eq!(s.invitations("acme", at(T0 + 50)).await.unwrap().len(), 2, "i2 expired");
    assert_eq!(
        s.open_invitation("inv-i1", at(T0)).await.unwrap().map(|i| i.email),
        Some("bob@example.com".into())
    );
    assert_eq!(s.open_invitation("inv-i2", at(T0 + 50)).await.unwrap(), None);

    assert!(matches!(s.accept_invitation("inv-i1", &eve, at(T0 + 1)).await, Err(Error::NotFound(_))));
    assert!(matches!(s.accept_invitation("inv-i2", &bob, at(T0 + 50)).await, Err(Error::NotFound(_))));
    s.revoke_invitation("acme", "i3", at(T0 + 1)).await.unwrap();
    assert!(matches!(s.accept_invitation("inv-i3", &bob, at(T0 + 2)).await, Err(Error::NotFound(_))));
    assert!(matches!(s.revoke_invitation("acme", "i3", at(T0 + 1)).await, Err(Error::NotFound(_))));
    assert!(matches!(s.revoke_invitation("other", "i1", at(T0 + 1)).await, Err(Error::NotFound(_))));

    // Eve's failed attempt consumed nothing: Bob can still use i1, once.
    let used = s.accept_invitation("inv-i1", &bob, at(T0 + 3)).await.unwrap();
    assert_eq!((used.id.as_str(), used.role), ("i1", Role::Editor));
    assert_eq!(s.role("acme", &bob.id).await.unwrap(), Some(Role::Editor));
    assert!(matches!(s.accept_invitation("inv-i1", &bob, at(T0 + 4)).await, Err(Error::NotFound(_))));
    assert_eq!(s.open_invitation("inv-i1", at(T0 + 4)).await.unwrap(), None);
}

pub async fn sessions_expire_and_end_everywhere(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let session = |d: &str, expires: i64| Session {
        digest: d.to_owned(),
        user_id: ada.id.clone(),
        csrf: format!("csrf-{d}"),
        created_at: at(T0),
        expires_at: at(expires),
    };
    for (d, exp) in [("s1", T0 + 100), ("s2", T0 + 100), ("s3", T0 + 10)] {
        s.create_session(&session(d, exp)).await.unwrap();
    }
    assert_eq!(s.session("s1", at(T0 + 50)).await.unwrap(), Some(session("s1", T0 + 100)));
    assert_eq!(s.session("s3", at(T0 + 50)).await.unwrap(), None, "expired");
    s.delete_session("s1").await.unwrap();
    assert_eq!(s.session("s1", at(T0)).await.unwrap(), None);
    assert_eq!(s.delete_sessions_of(&ada.id).await.unwrap(), 2);
    assert_eq!(s.session("s2", at(T0)).await.unwrap(), None);
}

pub async fn tokens_are_scoped_to_their_workspace(db: &TestDb) {
    let s = &*db.store;
    let ada = user(s, "ada@example.com").await;
    let bob = user(s, "bob@example.com").await;
    s.create_workspace("acme", "Acme", &ada.id, at(T0)).await.unwrap();
    s.create_workspace("bobs", "Bob's", &bob.id, at(T0)).await.unwrap();
    s.set_member("acme", &bob.id, Role::Operator, at(T0)).await.unwrap();
    s.create_token(&token("t1", "acme", &ada.id, Some(T0 + 1000))).await.unwrap();
    s.create_token(&token("t2", "acme", &bob.id, None)).await.unwrap();
    s.create_token(&token("t3", "bobs", &bob.id, None)).await.unwrap();
    let t1 = s.token_by_digest("digest-t1").await.unwrap().unwrap();
    assert_eq!(t1, token("t1", "acme", &ada.id, Some(T0 + 1000)));
    assert_eq!(s.tokens("acme", None).await.unwrap().len(), 2);
    let bobs: Vec<_> = s.tokens("acme", Some(&bob.id)).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(bobs, ["t2"]);
    assert!(matches!(s.revoke_token("bobs", "t1", at(T0)).await, Err(Error::NotFound(_))));
    let revoked = s.revoke_token("acme", "t1", at(T0 + 5)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T0 + 5)));
    assert!(matches!(s.revoke_token("acme", "t1", at(T0 + 6)).await, Err(Error::NotFound(_))));
    s.touch_token("t2", at(T0 + 7)).await.unwrap();
    assert_eq!(s.token_by_digest("digest-t2").await.unwrap().unwrap().last_used_at, Some(at(T0 + 7)));
    assert_eq!(s.token_by_digest("nope").await.unwrap(), None);
}
