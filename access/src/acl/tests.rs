use super::*;

fn acl(text: &str) -> AclFile {
    AclFile::parse(text).unwrap()
}

#[test]
fn anonymous_block_users_and_patterns() {
    let f = acl("# anonymous clients\n\
         topic read public/#\n\
         \n\
         user alice\n\
         topic readwrite alice/#\n\
         topic deny alice/secret/#\n\
         topic write cmd/+/set\n\
         user bob\n\
         topic bob/x\n\
         pattern readwrite devices/%c/#\n\
         pattern read users/%u/inbox\n");
    assert_eq!(f.rules(), 7);
    let anon = f.compile("dev1", None);
    assert!(anon.allows("public/a/b", Access::Read));
    assert!(!anon.allows("public/a", Access::Write));
    assert!(anon.allows("devices/dev1/t", Access::Write));
    assert!(!anon.allows("devices/dev2/t", Access::Write));
    assert!(!anon.allows("alice/a", Access::Read));
    assert!(
        !anon.allows("users/%u/inbox", Access::Read),
        "%u skipped without a user"
    );

    let alice = f.compile("c1", Some("alice"));
    assert!(alice.allows("alice", Access::Read), "a/# matches a");
    assert!(alice.allows("alice/x", Access::Write));
    assert!(!alice.allows("alice/secret", Access::Read), "deny wins");
    assert!(!alice.allows("alice/secret/y", Access::Write));
    assert!(alice.allows("cmd/lamp/set", Access::Write));
    assert!(!alice.allows("cmd/lamp/set", Access::Read));
    assert!(!alice.allows("cmd/lamp/set/x", Access::Write));
    assert!(
        !alice.allows("public/a", Access::Read),
        "the anonymous block is not hers"
    );
    assert!(alice.allows("users/alice/inbox", Access::Read));
    assert!(!alice.allows("users/bob/inbox", Access::Read));
    assert!(alice.allows("devices/c1/z", Access::Read));

    let bob = f.compile("c2", Some("bob"));
    assert!(bob.allows("bob/x", Access::Read) && bob.allows("bob/x", Access::Write));
    assert!(!bob.allows("bob/y", Access::Read));
    let nobody = f.compile("c3", Some("carol"));
    assert!(!nobody.allows("bob/x", Access::Read));
    assert!(nobody.allows("users/carol/inbox", Access::Read));
}

#[test]
fn own_grant_beats_pattern_deny_and_dollar_topics_need_dollar_rules() {
    let f = acl("user u\ntopic read #\ntopic read $SYS/broker/#\npattern deny #\n");
    let u = f.compile("c", Some("u"));
    assert!(u.allows("a/b", Access::Read), "own rules are tried first");
    assert!(
        !u.allows("$SYS/x", Access::Read),
        "# does not match $ topics"
    );
    assert!(u.allows("$SYS/broker/uptime", Access::Read));
    let other = f.compile("c", Some("v"));
    assert!(!other.allows("a/b", Access::Read));
}

#[test]
fn deny_anywhere_in_the_list_comes_first() {
    let f = acl("user u\ntopic readwrite a/#\ntopic deny a/b\ntopic read +/c\n");
    let u = f.compile("c", Some("u"));
    assert!(!u.allows("a/b", Access::Read));
    assert!(u.allows("a/c", Access::Read));
    assert!(u.allows("x/c", Access::Read));
    assert!(!u.allows("x/c", Access::Write));
}

#[test]
fn dangerous_names_get_no_patterns() {
    let f = acl("pattern readwrite c/%c/#\npattern readwrite u/%u/#\n");
    assert!(f.compile("ok", Some("me")).allows("c/ok/1", Access::Write));
    assert!(f.compile("ok", Some("me")).allows("u/me/1", Access::Write));
    assert!(!f.compile("+", Some("me")).allows("c/x/1", Access::Write));
    assert!(!f.compile("ok", Some("#")).allows("u/a/1", Access::Write));
}

#[test]
fn subscribe_reads_the_filter_as_a_topic() {
    let f = acl("topic read a/#\ntopic deny a/secret/#\ntopic read b/+\n");
    let c = f.compile("c", None);
    assert!(c.allows_subscribe("a/#"));
    assert!(c.allows_subscribe("a/+/x"));
    assert!(!c.allows_subscribe("a/secret/#"));
    assert!(!c.allows_subscribe("#"));
    assert!(c.allows_subscribe("b/+"));
    assert!(c.allows_subscribe("$share/g/a/x"));
    assert!(!c.allows_subscribe("$share/g/c"));
}

#[test]
fn empty_file_and_unknown_user_deny_everything() {
    let c = acl("").compile("c", None);
    assert!(!c.allows("a", Access::Read));
    assert_eq!(c.rules(), 0);
}

#[test]
fn bad_lines_are_named() {
    for (text, line, needle) in [
        ("topic sometimes a/b\n", 1, "unknown access"),
        ("# c\nuser\n", 2, "without a user name"),
        ("topic\n", 1, "without a topic"),
        ("topic read a/b#\n", 1, "whole level"),
        ("\n\ntopic read a/#/b\n", 3, "last level"),
        ("users alice\n", 1, "unknown keyword"),
    ] {
        let e = AclFile::parse(text).unwrap_err().to_string();
        assert!(e.contains(&format!("line {line}")), "{e}");
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn substitution() {
    assert_eq!(substitute("a/%c/%u/%x%", "id", Some("me")), "a/id/me/%x%");
    assert_eq!(substitute("%u%c", "id", None), "%uid");
}
