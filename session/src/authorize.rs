//! Authorization: who a connection is ([`Identity`]) and what it may do
//! ([`Authorizer`], held by [`SessionConfig::authorizer`](crate::SessionConfig::authorizer)).
//!
//! The session asks the authorizer at four points:
//! * CONNECT: [`Connection::authorize_connect`](crate::Connection::authorize_connect),
//!   a step the broker runs after authentication and before
//!   [`Connection::new`](crate::Connection::new); `Err(code)` → send
//!   [`reject_connack`](crate::reject_connack)`(code)`.
//! * PUBLISH from the client: a denied message is not routed (no
//!   [`Event::Publish`](crate::Event::Publish)); QoS 1/2 get PUBACK/PUBREC
//!   0x87 (v5) or a plain ack (v3, which has no reason codes), QoS 0 nothing.
//!   The broker is told by [`Event::PublishDenied`](crate::Event::PublishDenied).
//!   The will: [`Connection::handle_close`](crate::Connection::handle_close)
//!   returns it only when the authorizer allows its topic.
//! * SUBSCRIBE: a denied filter gets 0x87 (the codec sends 0x80 to v3) and
//!   is neither stored nor in the [`Event::Subscribe`](crate::Event::Subscribe).
//! * Delivery: [`Connection::deliver`](crate::Connection::deliver) drops a
//!   message the client may not receive ([`DropReason::NotAuthorized`](crate::DropReason::NotAuthorized)),
//!   only when [`Authorizer::checks_receive`] is true. Messages queued for
//!   an offline session ([`Session::enqueue`](crate::Session::enqueue)) are
//!   checked when a connection resumes the session
//!   ([`Connection::new`](crate::Connection::new)), and dropped there when
//!   denied.
//!
//! An authorizer may hand each connection a policy of its own
//! ([`Authorizer::for_client`], e.g. ACL rules compiled for that client
//! id and user name), which the connection asks instead from then on, and
//! replaces when the policy says it is stale ([`Authorizer::renew`]).

use crate::ConnectCheck;
use bytestring::ByteString;
use std::sync::{Arc, OnceLock};
use tern_codec::{Connect, QoS, ReasonCode};

/// Who a connection is, for authorization decisions.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The client identifier (the assigned one, when the server assigned it).
    pub client_id: ByteString,
    /// The CONNECT User Name.
    pub username: Option<ByteString>,
    /// Name or bind address of the listener the client came in on (the broker fills it in).
    pub listener: Option<ByteString>,
    /// The client's address (the broker fills it in).
    pub peer: Option<std::net::SocketAddr>,
    /// Subject of the client's TLS certificate, when there is one.
    pub cert_subject: Option<ByteString>,
}

impl Identity {
    /// The identity of a CONNECT that `check` accepted: the client id after
    /// assignment, the user name, and what the broker put in `check`.
    pub(crate) fn of_connect(connect: &Connect, check: &ConnectCheck) -> Self {
        Self {
            client_id: check
                .assigned_client_id
                .clone()
                .unwrap_or_else(|| connect.client_id.clone()),
            username: connect.username.clone(),
            listener: check.listener.clone(),
            peer: check.peer,
            cert_subject: check.cert_subject.clone(),
        }
    }
}

/// What a connection may do. Called on the worker thread for every
/// PUBLISH, SUBSCRIBE filter and (when [`checks_receive`](Self::checks_receive))
/// delivery: answer from memory, no IO.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// CONNECT, after authentication. Err(code) refuses the CONNACK with code.
    fn connect(&self, id: &Identity) -> Result<(), ReasonCode> {
        let _ = id;
        Ok(())
    }
    /// PUBLISH (and will) to topic.
    fn publish(&self, id: &Identity, topic: &str, qos: QoS, retain: bool) -> bool;
    /// SUBSCRIBE to one filter.
    fn subscribe(&self, id: &Identity, filter: &str, qos: QoS) -> bool {
        let _ = (id, filter, qos);
        true
    }
    /// Delivery of a message on `topic` to this client (live or retained).
    fn receive(&self, id: &Identity, topic: &str) -> bool {
        let _ = (id, topic);
        true
    }
    /// False when `receive` always allows: deliveries then skip the call.
    fn checks_receive(&self) -> bool {
        false
    }
    /// The policy of one client, built once when its connection starts
    /// ([`Connection::new`](crate::Connection::new), after
    /// [`connect`](Self::connect) allowed it): rules compiled for this
    /// identity, which the connection keeps and asks instead of `self`
    /// for its PUBLISH, SUBSCRIBE and delivery checks. `None` (the
    /// default): the connection asks `self`.
    fn for_client(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        let _ = id;
        None
    }
    /// Asked of a per-client policy (from [`for_client`](Self::for_client))
    /// before each check: `Some(next)` when the rules it was compiled from
    /// were replaced (a reload), and the connection then keeps `next`
    /// from this check on. Must be cheap when nothing changed (an atomic
    /// load): it runs on every PUBLISH and delivery.
    fn renew(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        let _ = id;
        None
    }
}

/// Today's policy: everything is allowed except a client's PUBLISH to `$SYS` topics ([MQTT-4.7.2-1]).
#[derive(Debug, Default)]
pub struct DefaultAuthorizer;

impl Authorizer for DefaultAuthorizer {
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        !is_sys_topic(topic)
    }
}

/// The `[MQTT-4.7.2-1]` family: topic names starting with `$` are the
/// server's. Tern keeps `$SYS` (the topic and everything under it) for
/// itself: [`DefaultAuthorizer`] refuses a client's PUBLISH or will there.
pub fn is_sys_topic(topic: &str) -> bool {
    tern_codec::topic::is_sys_topic(topic)
}

/// The [`DefaultAuthorizer`] every default [`SessionConfig`](crate::SessionConfig)
/// shares (one allocation per process, so default configs compare equal).
pub(crate) fn default_authorizer() -> Arc<dyn Authorizer> {
    static DEFAULT: OnceLock<Arc<dyn Authorizer>> = OnceLock::new();
    Arc::clone(DEFAULT.get_or_init(|| Arc::new(DefaultAuthorizer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_authorizer_refuses_only_sys_publishes() {
        let a = DefaultAuthorizer;
        let id = Identity::default();
        for (topic, allowed) in [
            ("$SYS", false),
            ("$SYS/x", false),
            ("$SYS/broker/uptime", false),
            ("$SYSTEM", true),
            ("$sys/x", true),
            ("a/$SYS", true),
            ("$share/g/t", true),
            ("t", true),
        ] {
            assert_eq!(
                a.publish(&id, topic, QoS::AtLeastOnce, false),
                allowed,
                "{topic}"
            );
        }
        assert_eq!(a.connect(&id), Ok(()));
        assert!(a.subscribe(&id, "$SYS/#", QoS::ExactlyOnce));
        assert!(a.receive(&id, "$SYS/x"));
        assert!(!a.checks_receive());
    }
}
