//! The Mosquitto ACL file, and its rules compiled for one client.
//!
//! ```text
//! # comment
//! topic read public/#            <- before the first `user`: anonymous clients
//! user alice
//! topic readwrite alice/#        <- alice's rules
//! topic deny alice/secret/#
//! pattern write devices/%c/out   <- every client, %c = client id, %u = user name
//! ```
//!
//! `topic [read|write|readwrite|deny] TOPIC` (no access word: readwrite),
//! `pattern …` with the same words, `user NAME`. Semantics as Mosquitto's
//! (`src/security_default.c`): a client with a user name gets that user's
//! `topic` rules, a client without one the anonymous block; patterns apply
//! to every client. The client's own rules are tried first, then the
//! patterns; in each list every `deny` comes before the grants, and the
//! first rule that matches the topic and either denies or grants the access
//! asked for decides. Nothing matching is a denial. A topic starting with
//! `$` is matched only by rules starting with `$`. Patterns are skipped for
//! a client whose user name or client id contains `+` or `#`, and a pattern
//! naming `%u` for a client without a user name.
//!
//! [`AclFile::compile`] turns the rules of one client (patterns substituted)
//! into a [`ClientAcl`]: a topic trie whose nodes carry the first deciding
//! rule of each kind, so [`ClientAcl::allows`] walks the topic's levels once
//! with no allocation and no lock, however many rules the file has.

use std::collections::HashMap;

use crate::AccessError;

/// What a rule or a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receiving messages on a topic (delivery, retained delivery, and a
    /// SUBSCRIBE filter read as a topic).
    Read,
    /// Publishing to a topic (PUBLISH, will).
    Write,
}

/// A rule's access word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Grant {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => Self::Read,
            "write" => Self::Write,
            "readwrite" => Self::ReadWrite,
            "deny" => Self::Deny,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    topic: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl AclFile {
    /// Reads the file; `Err` names the line and the reason.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let mut file = Self::default();
        let mut user: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let bad = |reason: String| AccessError::AclLine {
                line: i + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line
                .split_once([' ', '\t'])
                .map_or((line, ""), |(w, r)| (w, r.trim()));
            match word {
                "user" => {
                    if rest.is_empty() {
                        return Err(bad("`user` without a user name".into()));
                    }
                    user = Some(rest.to_string());
                }
                "topic" | "pattern" => {
                    if rest.is_empty() {
                        return Err(bad(format!("`{word}` without a topic")));
                    }
                    let (grant, topic) = match rest.split_once([' ', '\t']) {
                        Some((access, topic)) => {
                            let Some(grant) = Grant::parse(access) else {
                                return Err(bad(format!(
                                    "unknown access {access:?} (read, write, readwrite or deny)"
                                )));
                            };
                            (grant, topic.trim())
                        }
                        None => (Grant::ReadWrite, rest),
                    };
                    check_filter(topic).map_err(|r| bad(format!("topic {topic:?}: {r}")))?;
                    let rule = Rule {
                        grant,
                        topic: topic.to_string(),
                    };
                    let list = if word == "pattern" {
                        &mut file.patterns
                    } else if let Some(u) = &user {
                        file.users.entry(u.clone()).or_default()
                    } else {
                        &mut file.anonymous
                    };
                    list.push(rule);
                }
                other => {
                    return Err(bad(format!(
                        "unknown keyword {other:?} (topic, pattern or user)"
                    )))
                }
            }
        }
        Ok(file)
    }

    /// Number of rules (`topic` and `pattern` lines).
    pub fn rules(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(Vec::len).sum::<usize>()
    }

    /// The rules that apply to the client `client_id` with `username`,
    /// patterns substituted, compiled for [`ClientAcl::allows`].
    pub fn compile(&self, client_id: &str, username: Option<&str>) -> ClientAcl {
        let own = match username {
            Some(u) => self.users.get(u).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous,
        };
        let dangerous = |s: &str| s.contains(['+', '#']);
        let patterns_apply = !dangerous(client_id) && !username.is_some_and(dangerous);
        let mut acl = ClientAcl::default();
        let mut order = 0u32;
        let mut add = |acl: &mut ClientAcl, grant: Grant, topic: &str| {
            acl.insert(topic, grant, order);
            order += 1;
        };
        // Mosquitto's order: own denies, own grants, pattern denies, pattern grants.
        for deny in [true, false] {
            for r in own.iter().filter(|r| (r.grant == Grant::Deny) == deny) {
                add(&mut acl, r.grant, &r.topic);
            }
        }
        if patterns_apply {
            for deny in [true, false] {
                for r in self
                    .patterns
                    .iter()
                    .filter(|r| (r.grant == Grant::Deny) == deny)
                {
                    if username.is_none() && r.topic.contains("%u") {
                        continue;
                    }
                    let topic = substitute(&r.topic, client_id, username);
                    add(&mut acl, r.grant, &topic);
                }
            }
        }
        acl
    }
}

/// `%c` → client id, `%u` → user name (when there is one).
fn substitute(topic: &str, client_id: &str, username: Option<&str>) -> String {
    let mut out = String::with_capacity(topic.len() + client_id.len());
    let mut rest = topic;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%c") {
            out.push_str(client_id);
            rest = t;
        } else if let (Some(t), Some(u)) = (tail.strip_prefix("%u"), username) {
            out.push_str(u);
            rest = t;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A topic filter's wildcards: `+` and `#` fill a whole level, `#` last.
fn check_filter(topic: &str) -> Result<(), &'static str> {
    let mut levels = topic.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.len() > 1 && level.contains(['+', '#']) {
            return Err("a wildcard must fill a whole level");
        }
        if level == "#" && levels.peek().is_some() {
            return Err("`#` must be the last level");
        }
    }
    Ok(())
}

/// No rule.
const NONE: u32 = u32::MAX;

/// The first (lowest-ordered) rule ending at a node, by what it decides.
#[derive(Debug, Clone, Copy)]
struct Firsts {
    deny: u32,
    read: u32,
    write: u32,
}

impl Default for Firsts {
    fn default() -> Self {
        Self {
            deny: NONE,
            read: NONE,
            write: NONE,
        }
    }
}

impl Firsts {
    fn add(&mut self, grant: Grant, order: u32) {
        let slot = |s: &mut u32| *s = (*s).min(order);
        match grant {
            Grant::Deny => slot(&mut self.deny),
            Grant::Read => slot(&mut self.read),
            Grant::Write => slot(&mut self.write),
            Grant::ReadWrite => {
                slot(&mut self.read);
                slot(&mut self.write);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Self, ahash::RandomState>,
    plus: Option<Box<Self>>,
    /// Rules ending in `#` here (they match this level and everything below).
    hash: Option<Firsts>,
    /// Rules ending exactly here.
    end: Option<Firsts>,
}

/// One client's rules, compiled: see the module docs.
#[derive(Debug, Default)]
pub struct ClientAcl {
    root: Node,
    rules: u32,
}

/// The best deny and grant seen during one walk.
struct Best {
    access: Access,
    deny: u32,
    grant: u32,
}

impl Best {
    fn see(&mut self, f: &Firsts) {
        self.deny = self.deny.min(f.deny);
        let g = match self.access {
            Access::Read => f.read,
            Access::Write => f.write,
        };
        self.grant = self.grant.min(g);
    }
}

impl ClientAcl {
    fn insert(&mut self, filter: &str, grant: Grant, order: u32) {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = match level {
                "#" => {
                    node.hash
                        .get_or_insert_with(Firsts::default)
                        .add(grant, order);
                    self.rules += 1;
                    return;
                }
                "+" => node.plus.get_or_insert_with(Box::default),
                l => node.children.entry(l.into()).or_default(),
            };
        }
        node.end
            .get_or_insert_with(Firsts::default)
            .add(grant, order);
        self.rules += 1;
    }

    /// Number of rules compiled in.
    pub fn rules(&self) -> u32 {
        self.rules
    }

    /// True when the rules let the client have `access` to `topic`: the
    /// first matching rule that denies or grants it is a grant. No
    /// allocation, no lock.
    pub fn allows(&self, topic: &str, access: Access) -> bool {
        let mut best = Best {
            access,
            deny: NONE,
            grant: NONE,
        };
        walk(&self.root, Some(topic), topic.starts_with('$'), &mut best);
        best.grant < best.deny
    }

    /// A SUBSCRIBE filter: granted when the filter itself, read as a topic
    /// name, may be read (a `$share/GROUP/` prefix is taken off first).
    /// Each delivery is checked again with [`allows`](Self::allows).
    pub fn allows_subscribe(&self, filter: &str) -> bool {
        let filter = filter
            .strip_prefix("$share/")
            .and_then(|s| s.split_once('/'))
            .map_or(filter, |(_, f)| f);
        self.allows(filter, Access::Read)
    }
}

/// Visits every rule matching `rest` (the topic's remaining levels; `None`
/// once all are consumed) from `node`. `dollar`: at the first level of a
/// `$` topic, where wildcards do not match.
fn walk(node: &Node, rest: Option<&str>, dollar: bool, best: &mut Best) {
    if let Some(f) = &node.hash {
        if !dollar {
            best.see(f);
        }
    }
    let Some(s) = rest else {
        if let Some(f) = &node.end {
            best.see(f);
        }
        return;
    };
    let (level, next) = match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if let Some(child) = node.children.get(level) {
        walk(child, next, false, best);
    }
    if let Some(plus) = &node.plus {
        if !dollar {
            walk(plus, next, false, best);
        }
    }
}

#[cfg(test)]
mod tests;
