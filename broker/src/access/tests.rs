use super::*;
use bytes::Bytes;
use tern_codec::{ConnectProperties, ProtocolVersion};
use tern_config::{ListenerAccess, ListenerConfig};
use tern_session::auth::{CredentialStore, UserTable};

struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "tern-access-unit-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn passwd_line(user: &str, password: &str) -> String {
    let hash = tern_access::PasswordHash::new_pbkdf2(password.as_bytes(), 3).unwrap();
    format!("{user}:{hash}\n")
}

fn connect(user: Option<&str>, password: &str) -> Connect {
    Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "c1".into(),
        will: None,
        username: user.map(Into::into),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
        properties: ConnectProperties::default(),
    }
}

/// Two listeners: `open` with the global files, `strict` with its own
/// password file, no anonymous access, and its own ACL.
fn config(f: &Files) -> Config {
    let mut c = Config::default();
    c.auth.password_file = Some(f.write("global.pw", &passwd_line("alice", "a")));
    c.auth.acl_file = Some(f.write(
        "global.acl",
        "topic read anonymous/#\nuser alice\ntopic readwrite #\n",
    ));
    let mut open = ListenerConfig::tcp("127.0.0.1:1".parse().unwrap());
    open.name = "open".into();
    let mut strict = ListenerConfig::tcp("127.0.0.1:2".parse().unwrap());
    strict.name = "strict".into();
    strict.access = ListenerAccess {
        password_file: Some(f.write("strict.pw", &passwd_line("bob", "b"))),
        acl_file: Some(f.write("strict.acl", "user bob\ntopic read bob/#\n")),
        allow_anonymous: Some(false),
    };
    c.listeners = vec![open, strict];
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn none() -> AuthPolicy {
    AuthPolicy::default()
}

#[test]
fn listeners_have_their_own_files_and_anonymous_setting() {
    let f = Files::new("listeners");
    let access = Access::new(&config(&f)).unwrap();
    rt().block_on(async {
        let auth = |l: &'static str, user: Option<&'static str>, pw: &'static str| {
            let access = Arc::clone(&access);
            async move { access.authenticate(l, &connect(user, pw), &none()).await }
        };
        // Verified by the file: the session is told to accept the name.
        assert_eq!(
            auth("open", Some("alice"), "a").await,
            Ok(AuthPolicy::default())
        );
        assert_eq!(
            auth("open", Some("alice"), "x").await,
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
        assert_eq!(
            auth("strict", Some("alice"), "a").await,
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "alice is in the global file, not in strict's"
        );
        assert_eq!(
            auth("strict", Some("bob"), "b").await,
            Ok(AuthPolicy::default())
        );
        // Anonymous: the listener's setting goes to the session, which refuses.
        let anon = auth("strict", None, "").await.unwrap();
        assert!(!anon.allow_anonymous);
        assert!(auth("open", None, "").await.unwrap().allow_anonymous);
    });
    let c = &access.counters;
    assert_eq!(c.bad_password.load(Relaxed), 1);
    assert_eq!(c.unknown_user.load(Relaxed), 1);
    assert_eq!(c.anonymous.load(Relaxed), 1);
    assert_eq!(c.verifications.load(Relaxed), 3);

    let id = |listener: &str, user: Option<&str>| Identity {
        client_id: "c1".into(),
        username: user.map(Into::into),
        listener: Some(listener.into()),
        ..Identity::default()
    };
    let bob = access.policy_for(&id("strict", Some("bob")));
    assert!(bob.receive(&id("strict", Some("bob")), "bob/x"));
    assert!(!bob.publish(&id("strict", Some("bob")), "bob/x", QoS::AtMostOnce, false));
    assert!(!bob.subscribe(&id("strict", Some("bob")), "other/#", QoS::AtMostOnce));
    let alice = access.policy_for(&id("open", Some("alice")));
    assert!(alice.publish(&id("open", Some("alice")), "any/x", QoS::AtMostOnce, false));
    assert!(
        !alice.publish(&id("open", Some("alice")), "$SYS/x", QoS::AtMostOnce, false),
        "$SYS stays the broker's"
    );
    assert_eq!(c.acl_publish.load(Relaxed), 2);
    assert_eq!(c.acl_subscribe.load(Relaxed), 1);
}

// The password file first; a name not in it goes to the [auth] users;
// SCRAM (an Authentication Method) always to the [auth] users.
#[test]
fn password_file_then_auth_users() {
    let f = Files::new("precedence");
    let mut c = Config::default();
    c.auth.password_file = Some(f.write("pw", &passwd_line("alice", "file-pw")));
    let access = Access::new(&c).unwrap();
    let table: Arc<dyn CredentialStore> =
        Arc::new(UserTable::new([("alice", "table-pw"), ("carol", "c")], 4096).unwrap());
    let session = AuthPolicy {
        allow_anonymous: true,
        store: Some(Arc::clone(&table)),
    };
    rt().block_on(async {
        let a = &access;
        assert_eq!(
            a.authenticate("x", &connect(Some("alice"), "file-pw"), &session)
                .await,
            Ok(AuthPolicy::default())
        );
        assert_eq!(
            a.authenticate("x", &connect(Some("alice"), "table-pw"), &session)
                .await,
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "the file decides for its users"
        );
        // carol is not in the file: the session checks her against the table.
        let p = a
            .authenticate("x", &connect(Some("carol"), "c"), &session)
            .await
            .unwrap();
        assert!(p.store.is_some_and(|s| Arc::ptr_eq(&s, &table)));
        let mut scram = connect(Some("alice"), "");
        scram.protocol = ProtocolVersion::V5;
        scram.properties.authentication_method = Some("SCRAM-SHA-256".into());
        let p = a.authenticate("x", &scram, &session).await.unwrap();
        assert!(p.store.is_some(), "SCRAM goes to the [auth] users");
        // A second success is a cache hit, not a PBKDF2 run.
        let before = access.counters.verifications.load(Relaxed);
        a.authenticate("x", &connect(Some("alice"), "file-pw"), &session)
            .await
            .unwrap();
        assert_eq!(access.counters.verifications.load(Relaxed), before);
        assert_eq!(access.counters.cache_hits.load(Relaxed), 1);
    });
}

#[test]
fn reload_keeps_a_broken_file_and_renews_policies_only_when_an_acl_changed() {
    let f = Files::new("reload");
    let c = config(&f);
    let access = Access::new(&c).unwrap();
    let id = Identity {
        client_id: "c1".into(),
        username: Some("bob".into()),
        listener: Some("strict".into()),
        ..Identity::default()
    };
    let policy = access.policy_for(&id);
    access.reload(&c);
    assert!(policy.renew(&id).is_none(), "same files: nothing to renew");

    f.write("strict.acl", "user bob\ntopic write bob/#\n");
    f.write("strict.pw", "bob:$9$nope\n");
    access.reload(&c);
    assert_eq!(access.counters.reload_failures.load(Relaxed), 1);
    let renewed = policy.renew(&id).expect("the ACL changed");
    assert!(renewed.publish(&id, "bob/x", QoS::AtMostOnce, false));
    assert!(!renewed.receive(&id, "bob/x"));
    assert!(renewed.renew(&id).is_none());
    rt().block_on(async {
        assert_eq!(
            access
                .authenticate("strict", &connect(Some("bob"), "b"), &none())
                .await,
            Ok(AuthPolicy::default()),
            "the broken password file kept the one in force"
        );
    });

    // Without an ACL any more: the open policy.
    let mut c2 = c.clone();
    c2.listeners[1].access.acl_file = None;
    c2.auth.acl_file = None;
    access.reload(&c2);
    let open = renewed.renew(&id).expect("the ACL went away");
    assert!(!open.checks_receive());
    assert!(open.publish(&id, "anything", QoS::AtMostOnce, false));
}

#[test]
fn a_file_that_does_not_load_fails_the_start() {
    let f = Files::new("start");
    let mut c = Config::default();
    c.auth.acl_file = Some(f.write("acl", "topic read a\nbogus line\n"));
    let e = Access::new(&c).unwrap_err().to_string();
    assert!(e.contains("ACL file line 2"), "{e}");
    c.auth.acl_file = Some(f.0.join("missing"));
    assert!(Access::new(&c).is_err());
}
