//! Password and ACL files (Mosquitto's formats, `tern_access`): loaded at
//! start and at each reload, per listener; user name / password checks off
//! the worker's message loop; the session's authorizer, which gives each
//! connection its ACL compiled for its client id and user name.
//!
//! * Which rules: a listener's `[listener.access]` keys, each falling back
//!   to `[auth]` (`password_file`, `acl_file`, `allow_anonymous`).
//! * Authentication ([`Access::authenticate`], at CONNECT): a v5 CONNECT
//!   with an Authentication Method goes to SCRAM (`[auth] users`); a user
//!   name in the password file is checked against it — on the blocking
//!   pool, at most one check per core at a time, with a cache of recent
//!   successes ([`SuccessCache`]); any other user name is checked against
//!   `[auth] users` and refused (0x86, v3 return code 4) when there are
//!   none; no user name is refused (0x87, v3 return code 5) unless the
//!   listener allows anonymous clients.
//! * Authorization ([`AccessAuthorizer`], `SessionConfig::authorizer`):
//!   at `Connection::new` each connection gets a policy of its own: the
//!   listener's ACL compiled for it ([`ClientRules`]), or, without an ACL,
//!   the shared [`Open`] policy (everything but client writes to `$SYS`).
//! * Reload ([`Access::reload`]): every file is read again; one that does
//!   not load keeps the one in force (logged, counted). New connections
//!   use the new files at once. Connected clients stay connected with the
//!   password they gave; when an ACL changed, each policy sees the new
//!   generation at its next check (one atomic load) and the connection
//!   compiles the new rules then ([`Authorizer::renew`]).

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tern_access::{AclFile, ClientAcl, PasswordFile, SuccessCache};
use tern_codec::{Connect, QoS, ReasonCode};
use tern_config::Config;
use tern_session::auth::AuthPolicy;
use tern_session::{is_sys_topic, Authorizer, Identity};

/// Entries of the cache of successful password checks.
const CACHE_CAPACITY: usize = 16_384;
/// How long a successful check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(600);
/// Longest wait for a password check (queue and PBKDF2 together).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// A file as loaded: its id (a reloaded file that changed gets a new one,
/// which also retires its cache entries) and its path.
#[derive(Debug)]
struct Loaded<T> {
    id: u64,
    path: PathBuf,
    file: Arc<T>,
}

impl<T> Clone for Loaded<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            path: self.path.clone(),
            file: Arc::clone(&self.file),
        }
    }
}

/// The access settings of one listener.
#[derive(Debug, Clone)]
struct Rules {
    passwd: Option<Loaded<PasswordFile>>,
    acl: Option<Loaded<AclFile>>,
    allow_anonymous: bool,
}

/// One generation of rules: every listener's, by name.
#[derive(Debug)]
struct AccessSet {
    generation: u64,
    /// Listeners not named in the configuration (none in practice).
    global: Arc<Rules>,
    listeners: HashMap<String, Arc<Rules>>,
    /// The policy of clients whose listener has no ACL in this generation.
    open: Arc<dyn Authorizer>,
}

impl AccessSet {
    fn rules(&self, listener: Option<&str>) -> &Arc<Rules> {
        listener
            .and_then(|l| self.listeners.get(l))
            .unwrap_or(&self.global)
    }
}

/// Counters, exported as `tern_access_denials_total{reason}` and
/// `tern_access_reload_failures_total`.
#[derive(Debug, Default)]
pub(crate) struct AccessCounters {
    pub(crate) bad_password: AtomicU64,
    pub(crate) unknown_user: AtomicU64,
    pub(crate) anonymous: AtomicU64,
    pub(crate) acl_publish: AtomicU64,
    pub(crate) acl_subscribe: AtomicU64,
    pub(crate) acl_receive: AtomicU64,
    pub(crate) reload_failures: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) verifications: AtomicU64,
}

impl AccessCounters {
    /// `(reason, count)` of every denial counter, in export order.
    pub(crate) fn denials(&self) -> [(&'static str, u64); 6] {
        [
            ("bad_password", self.bad_password.load(Relaxed)),
            ("unknown_user", self.unknown_user.load(Relaxed)),
            ("anonymous", self.anonymous.load(Relaxed)),
            ("acl_publish", self.acl_publish.load(Relaxed)),
            ("acl_subscribe", self.acl_subscribe.load(Relaxed)),
            ("acl_receive", self.acl_receive.load(Relaxed)),
        ]
    }
}

/// Why the access files could not be put in force at start.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct AccessLoadError {
    path: String,
    reason: String,
}

/// The broker's access state: see the module docs.
#[derive(Debug)]
pub(crate) struct Access {
    current: ArcSwap<AccessSet>,
    /// The generation in force, read by every policy before each check.
    generation: Arc<AtomicU64>,
    next_file_id: AtomicU64,
    cache: Mutex<SuccessCache>,
    verifiers: tokio::sync::Semaphore,
    pub(crate) counters: Arc<AccessCounters>,
    /// To give policies a way back for `renew`.
    me: Weak<Self>,
}

impl Access {
    /// Loads the files `config` names; any that does not load is an error.
    pub(crate) fn new(config: &Config) -> Result<Arc<Self>, AccessLoadError> {
        let cache = SuccessCache::new(CACHE_CAPACITY, CACHE_TTL).map_err(|e| AccessLoadError {
            path: "password cache".into(),
            reason: e.to_string(),
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let generation = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(AccessCounters::default());
        let mut first_error = None;
        let access = Arc::new_cyclic(|me: &Weak<Self>| {
            let next_file_id = AtomicU64::new(1);
            let set = build(config, None, &next_file_id, |path, reason| {
                first_error.get_or_insert(AccessLoadError {
                    path: path.display().to_string(),
                    reason,
                });
            });
            let set = finish(set, 0, me, &generation, &counters);
            Self {
                current: ArcSwap::from_pointee(set),
                generation: Arc::clone(&generation),
                next_file_id,
                cache: Mutex::new(cache),
                verifiers: tokio::sync::Semaphore::new(cores),
                counters: Arc::clone(&counters),
                me: me.clone(),
            }
        });
        match first_error {
            Some(e) => Err(e),
            None => {
                access.log_in_force("access control configured");
                Ok(access)
            }
        }
    }

    /// Reads every file again for the configuration now in force. A file
    /// that does not load keeps the one in force (logged and counted);
    /// connected clients get a changed ACL at their next check.
    pub(crate) fn reload(&self, config: &Config) {
        let old = self.current.load_full();
        let set = build(config, Some(&old), &self.next_file_id, |path, reason| {
            self.counters.reload_failures.fetch_add(1, Relaxed);
            tracing::error!(path = %path.display(), %reason,
                "access file rejected on reload; the one in force stays");
        });
        let acl_changed = set.len() != old.listeners.len() + 1
            || set.iter().any(|(name, rules)| {
                let before = match name {
                    Some(n) => old.listeners.get(n),
                    None => Some(&old.global),
                };
                let (a, b) = (before.and_then(|r| r.acl.as_ref()), rules.acl.as_ref());
                match (a, b) {
                    (None, None) => false,
                    (Some(a), Some(b)) => a.id != b.id,
                    _ => true,
                }
            });
        let generation = if acl_changed {
            old.generation + 1
        } else {
            old.generation
        };
        let set = finish(set, generation, &self.me, &self.generation, &self.counters);
        self.current.store(Arc::new(set));
        // After the store: a policy that sees the new number finds the new rules.
        self.generation.store(generation, Relaxed);
        self.log_in_force("access control reloaded");
    }

    fn log_in_force(&self, what: &str) {
        let set = self.current.load();
        let show = |r: &Rules| {
            (
                r.passwd
                    .as_ref()
                    .map(|p| format!("{} ({} users)", p.path.display(), p.file.len())),
                r.acl
                    .as_ref()
                    .map(|a| format!("{} ({} rules)", a.path.display(), a.file.rules())),
            )
        };
        for (name, rules) in &set.listeners {
            let (passwd, acl) = show(rules);
            tracing::info!(listener = %name, ?passwd, ?acl, allow_anonymous = rules.allow_anonymous,
                generation = set.generation, "{what}");
        }
    }

    /// The policy of a client connecting with `id` (its listener's ACL
    /// compiled for its client id and user name).
    fn policy_for(&self, id: &Identity) -> Arc<dyn Authorizer> {
        let set = self.current.load();
        let rules = set.rules(id.listener.as_deref());
        match &rules.acl {
            Some(acl) => Arc::new(ClientRules {
                acl: acl.file.compile(&id.client_id, id.username.as_deref()),
                stamp: stamp(set.generation, &self.me, &self.generation, &self.counters),
            }),
            None => Arc::clone(&set.open),
        }
    }

    /// Decides the user name and password of `connect` on `listener`:
    /// `Ok(policy)` for `Connection::check_connect_with` (which applies
    /// the rest), `Err(code)` to refuse. `session` is the `[auth]` policy
    /// (SCRAM and `[auth] users`). Waits for a password-file check, which
    /// runs on the blocking pool.
    pub(crate) async fn authenticate(
        &self,
        listener: &str,
        connect: &Connect,
        session: &AuthPolicy,
    ) -> Result<AuthPolicy, ReasonCode> {
        let rules = Arc::clone(self.current.load().rules(Some(listener)));
        let own = AuthPolicy {
            allow_anonymous: rules.allow_anonymous,
            store: session.store.clone(),
        };
        let enhanced =
            connect.protocol.is_v5() && connect.properties.authentication_method.is_some();
        let Some(user) = connect.username.as_deref().filter(|_| !enhanced) else {
            if !enhanced && !rules.allow_anonymous {
                self.counters.anonymous.fetch_add(1, Relaxed);
            }
            return Ok(own);
        };
        let Some(passwd) = &rules.passwd else {
            return Ok(own);
        };
        let password = connect.password.as_deref().unwrap_or_default();
        if passwd.file.contains(user) {
            return if self.verify(passwd, user, password).await? {
                // Verified here: the session need not check the name again.
                Ok(AuthPolicy::default())
            } else {
                self.counters.bad_password.fetch_add(1, Relaxed);
                Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
            };
        }
        if own.store.is_none() {
            self.counters.unknown_user.fetch_add(1, Relaxed);
            return Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        }
        Ok(own)
    }

    /// Checks `password` for `user` of `passwd`: a cache hit, or a check
    /// on the blocking pool (at most one per core at a time; the others
    /// wait their turn). `Err(0x88)` when it took longer than
    /// [`VERIFY_TIMEOUT`].
    async fn verify(
        &self,
        passwd: &Loaded<PasswordFile>,
        user: &str,
        password: &[u8],
    ) -> Result<bool, ReasonCode> {
        let Some(hash) = passwd.file.hash(user).cloned() else {
            return Ok(false);
        };
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.hit(Instant::now(), passwd.id, user, password)
        };
        if cached {
            self.counters.cache_hits.fetch_add(1, Relaxed);
            return Ok(true);
        }
        let check = async {
            let _permit = self.verifiers.acquire().await.ok()?;
            self.counters.verifications.fetch_add(1, Relaxed);
            let pw = password.to_vec();
            tokio::task::spawn_blocking(move || hash.verify(&pw))
                .await
                .ok()
        };
        let Ok(Some(ok)) = tokio::time::timeout(VERIFY_TIMEOUT, check).await else {
            tracing::warn!(%user, "password check did not finish; refusing");
            return Err(ReasonCode::SERVER_UNAVAILABLE);
        };
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.insert(Instant::now(), passwd.id, user, password);
        }
        Ok(ok)
    }
}

/// The rules of every listener of `config` (`None`: the global rules),
/// loading each path once. A file that does not load is reported to
/// `failed` and replaced by the same slot of `old`, if any.
fn build(
    config: &Config,
    old: Option<&AccessSet>,
    next_id: &AtomicU64,
    mut failed: impl FnMut(&Path, String),
) -> Vec<(Option<String>, Rules)> {
    let mut passwds: HashMap<PathBuf, Option<Loaded<PasswordFile>>> = HashMap::new();
    let mut acls: HashMap<PathBuf, Option<Loaded<AclFile>>> = HashMap::new();
    let auth = &config.auth;
    let slots = std::iter::once((None, None, None, None)).chain(config.listeners.iter().map(|l| {
        (
            Some(l.name.clone()),
            l.access.password_file.clone(),
            l.access.acl_file.clone(),
            l.access.allow_anonymous,
        )
    }));
    let mut out = Vec::new();
    for (name, passwd, acl, anon) in slots {
        let before = old.map(|o| match &name {
            Some(n) => o.listeners.get(n).unwrap_or(&o.global),
            None => &o.global,
        });
        let passwd = passwd
            .or_else(|| auth.password_file.clone())
            .and_then(|path| {
                let prev = before.and_then(|b| b.passwd.as_ref());
                passwds
                    .entry(path.clone())
                    .or_insert_with(|| load(&path, prev, next_id, PasswordFile::parse, &mut failed))
                    .clone()
            });
        let acl = acl.or_else(|| auth.acl_file.clone()).and_then(|path| {
            let prev = before.and_then(|b| b.acl.as_ref());
            acls.entry(path.clone())
                .or_insert_with(|| load(&path, prev, next_id, AclFile::parse, &mut failed))
                .clone()
        });
        let rules = Rules {
            passwd,
            acl,
            allow_anonymous: anon.unwrap_or(auth.allow_anonymous),
        };
        out.push((name, rules));
    }
    out
}

/// Reads and parses `path`. The same content as `prev` keeps `prev` (its
/// id, so cache entries and compiled policies stay valid); a failure keeps
/// `prev` too, after telling `failed`.
fn load<T: PartialEq, E: std::fmt::Display>(
    path: &Path,
    prev: Option<&Loaded<T>>,
    next_id: &AtomicU64,
    parse: fn(&str) -> Result<T, E>,
    failed: &mut impl FnMut(&Path, String),
) -> Option<Loaded<T>> {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| parse(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(file) => match prev {
            Some(p) if p.path == path && *p.file == file => Some(p.clone()),
            _ => Some(Loaded {
                id: next_id.fetch_add(1, Relaxed),
                path: path.to_path_buf(),
                file: Arc::new(file),
            }),
        },
        Err(reason) => {
            failed(path, reason);
            prev.cloned()
        }
    }
}

fn finish(
    slots: Vec<(Option<String>, Rules)>,
    generation: u64,
    me: &Weak<Access>,
    now: &Arc<AtomicU64>,
    counters: &Arc<AccessCounters>,
) -> AccessSet {
    let mut global = None;
    let mut listeners = HashMap::new();
    for (name, rules) in slots {
        match name {
            Some(n) => {
                listeners.insert(n, Arc::new(rules));
            }
            None => global = Some(Arc::new(rules)),
        }
    }
    AccessSet {
        generation,
        global: global.unwrap_or_else(|| {
            Arc::new(Rules {
                passwd: None,
                acl: None,
                allow_anonymous: true,
            })
        }),
        listeners,
        open: Arc::new(Open {
            stamp: stamp(generation, me, now, counters),
        }),
    }
}

fn stamp(
    made_for: u64,
    access: &Weak<Access>,
    now: &Arc<AtomicU64>,
    counters: &Arc<AccessCounters>,
) -> Stamp {
    Stamp {
        made_for,
        now: Arc::clone(now),
        access: access.clone(),
        counters: Arc::clone(counters),
    }
}

/// Which generation a policy was made for, and the way to its successor.
#[derive(Debug)]
struct Stamp {
    made_for: u64,
    now: Arc<AtomicU64>,
    access: Weak<Access>,
    counters: Arc<AccessCounters>,
}

impl Stamp {
    fn renew(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        if self.now.load(Relaxed) == self.made_for {
            return None;
        }
        Some(self.access.upgrade()?.policy_for(id))
    }
}

/// `SessionConfig::authorizer`: gives each connection its policy.
#[derive(Debug)]
pub(crate) struct AccessAuthorizer(pub(crate) Arc<Access>);

impl Authorizer for AccessAuthorizer {
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        !is_sys_topic(topic)
    }
    fn for_client(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        Some(self.0.policy_for(id))
    }
}

/// A client's ACL, compiled at CONNECT.
#[derive(Debug)]
struct ClientRules {
    acl: ClientAcl,
    stamp: Stamp,
}

impl Authorizer for ClientRules {
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        let ok = !is_sys_topic(topic) && self.acl.allows(topic, tern_access::Access::Write);
        if !ok {
            self.stamp.counters.acl_publish.fetch_add(1, Relaxed);
        }
        ok
    }
    fn subscribe(&self, _id: &Identity, filter: &str, _qos: QoS) -> bool {
        let ok = self.acl.allows_subscribe(filter);
        if !ok {
            self.stamp.counters.acl_subscribe.fetch_add(1, Relaxed);
        }
        ok
    }
    fn receive(&self, _id: &Identity, topic: &str) -> bool {
        let ok = self.acl.allows(topic, tern_access::Access::Read);
        if !ok {
            self.stamp.counters.acl_receive.fetch_add(1, Relaxed);
        }
        ok
    }
    fn checks_receive(&self) -> bool {
        true
    }
    fn renew(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        self.stamp.renew(id)
    }
}

/// No ACL: everything but client writes to `$SYS`.
#[derive(Debug)]
struct Open {
    stamp: Stamp,
}

impl Authorizer for Open {
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        !is_sys_topic(topic)
    }
    fn renew(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        self.stamp.renew(id)
    }
}

#[cfg(test)]
mod tests;
