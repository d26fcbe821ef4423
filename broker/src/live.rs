//! The configuration in force, swappable by a reload (see `reload`).
//!
//! [`Live`] is shared by every thread: one `ArcSwap` of the [`Runtime`]
//! settings and a version counter. Workers do not read it on the message
//! path: each keeps a [`WorkerLive`] copy that its 500 ms tick refreshes
//! when the version moved (one atomic load per tick), and reads it with a
//! `RefCell` borrow. Connections take the settings in force when they
//! connect and keep them for their life.

use crate::access::{Access, AccessAuthorizer};
use crate::error::BrokerError;
use arc_swap::ArcSwap;
use std::cell::{Cell, Ref, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tern_codec::QoS;
use tern_config::Config;
use tern_session::auth::{AuthPolicy, CredentialStore, UserTable};
use tern_session::SessionConfig;

/// The settings in force: the effective configuration (values that need a
/// restart stay at their startup value) and the session limits it implies.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) session: Arc<SessionConfig>,
    /// What `POST /admin/reload` requires (`admin_token`, `admin_token_file`).
    pub(crate) admin_token: Option<crate::admin_token::AdminToken>,
}

impl Runtime {
    /// Fails when the `[auth]` users cannot be turned into credentials, or
    /// `admin_token_file` cannot be read.
    /// `record_changes`: the persistence backend wants the sessions'
    /// change journal (see `store`).
    /// `access`: the password and ACL files, whose authorizer the
    /// session configuration carries.
    pub(crate) fn new(
        config: Config,
        record_changes: bool,
        access: &Arc<Access>,
    ) -> Result<Self, BrokerError> {
        let admin_token = crate::admin_token::AdminToken::from_config(&config)?;
        let session = Arc::new(SessionConfig {
            record_changes,
            authorizer: Arc::new(AccessAuthorizer(Arc::clone(access))),
            ..session_config(&config)?
        });
        Ok(Self {
            config,
            session,
            admin_token,
        })
    }
}

/// The shared, swappable [`Runtime`].
#[derive(Debug)]
pub(crate) struct Live {
    current: ArcSwap<Runtime>,
    version: AtomicU64,
}

impl Live {
    pub(crate) fn new(
        config: Config,
        record_changes: bool,
        access: &Arc<Access>,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            current: ArcSwap::from_pointee(Runtime::new(config, record_changes, access)?),
            version: AtomicU64::new(0),
        })
    }

    /// The settings in force now.
    pub(crate) fn load(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Puts `runtime` in force.
    pub(crate) fn store(&self, runtime: Runtime) {
        self.current.store(Arc::new(runtime));
        self.version.fetch_add(1, Ordering::Release);
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// A worker's copy of the [`Runtime`], refreshed by its tick.
#[derive(Debug)]
pub(crate) struct WorkerLive {
    current: RefCell<Arc<Runtime>>,
    version: Cell<u64>,
}

impl WorkerLive {
    pub(crate) fn new(live: &Live) -> Self {
        // Version first: a store in between is seen at the next refresh.
        let version = live.version();
        Self {
            current: RefCell::new(live.load()),
            version: Cell::new(version),
        }
    }

    /// Takes the shared settings if they changed since the last call.
    /// Returns true when they did.
    pub(crate) fn refresh(&self, live: &Live) -> bool {
        let version = live.version();
        if version == self.version.get() {
            return false;
        }
        let Ok(mut current) = self.current.try_borrow_mut() else {
            return false; // borrowed right now: next tick
        };
        *current = live.load();
        self.version.set(version);
        true
    }

    /// The settings in force (hold it only briefly: never across an await).
    pub(crate) fn borrow(&self) -> Ref<'_, Arc<Runtime>> {
        self.current.borrow()
    }

    /// The settings in force, to keep.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        Arc::clone(&self.current.borrow())
    }
}

/// The session configuration the limits, `[mqtt]` and `[auth]` imply. The
/// users' credentials are derived here (PBKDF2 per user and mechanism), at
/// start and at each reload.
pub(crate) fn session_config(config: &Config) -> Result<SessionConfig, BrokerError> {
    let (l, m) = (&config.limits, &config.mqtt);
    let a = &config.auth;
    let store: Option<Arc<dyn CredentialStore>> = if a.users.is_empty() {
        None
    } else {
        let users = a.users.iter().map(|u| (u.username.as_str(), &u.password));
        Some(Arc::new(UserTable::new(users, a.scram_iterations)?))
    };
    if store.is_none() && !a.allow_anonymous {
        tracing::warn!(
            "auth.allow_anonymous is false and auth.users is empty: every client will be refused"
        );
    }
    tracing::info!(
        users = a.users.len(),
        allow_anonymous = a.allow_anonymous,
        "authentication configured"
    );
    Ok(SessionConfig {
        max_inflight: l.max_inflight,
        max_queued_messages: l.max_queued_messages,
        max_queued_bytes: l.max_queued_bytes,
        max_keep_alive: l.max_keep_alive,
        queue_qos0_offline: l.queue_qos0_offline,
        max_subscriptions: l.max_subscriptions_per_client,
        max_incoming_inflight: l.max_incoming_inflight,
        max_packet_size: l.max_packet_size,
        topic_alias_maximum: m.topic_alias_maximum,
        max_qos: match m.max_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        },
        retain_available: m.retain_available,
        validate_payload_format: m.validate_payload_format,
        response_information: m.response_information.as_str().into(),
        outbound_topic_alias_maximum: m.outbound_topic_alias_maximum,
        server_reference: m.server_reference.as_str().into(),
        server_moved: m.server_moved,
        max_topic_length: l.max_topic_length,
        max_topic_levels: l.max_topic_levels,
        auth: AuthPolicy {
            allow_anonymous: a.allow_anonymous,
            store,
        },
        // The default authorizer (no client PUBLISH to `$SYS`; `Runtime`
        // puts the access files' in), no journal.
        ..SessionConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_see_a_store_at_their_next_refresh() {
        let access = Access::new(&Config::default()).unwrap();
        let live = Live::new(Config::default(), false, &access).unwrap();
        let worker = WorkerLive::new(&live);
        assert!(!worker.refresh(&live), "nothing changed");
        let mut config = Config::default();
        config.limits.max_inflight = 3;
        config.limits.max_packet_size = 1000;
        live.store(Runtime::new(config, false, &access).unwrap());
        assert_eq!(
            worker.runtime().session.max_inflight,
            32,
            "not before the refresh"
        );
        {
            let _held = worker.borrow();
            assert!(!worker.refresh(&live), "a borrowed copy is left alone");
        }
        assert!(worker.refresh(&live));
        assert_eq!(worker.runtime().session.max_inflight, 3);
        assert_eq!(worker.runtime().session.max_packet_size, 1000);
        assert_eq!(worker.runtime().config.limits.max_inflight, 3);
        assert!(!worker.refresh(&live));
    }
}
