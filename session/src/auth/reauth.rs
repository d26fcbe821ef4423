//! Re-authentication (4.12.1) on a connected [`Connection`].

use super::{AuthExchange, Authenticated};
use crate::{Connection, ProtocolError};
use bytestring::ByteString;
use tern_codec::{Auth, AuthProperties, Packet, ReasonCode};

/// The enhanced authentication state of a connection that authenticated
/// with an Authentication Method at CONNECT.
#[derive(Debug)]
pub(crate) struct ConnAuth {
    method: ByteString,
    user: ByteString,
    /// A re-authentication waiting for the client's AUTH 0x18.
    pending: Option<AuthExchange>,
}

impl ConnAuth {
    pub(crate) fn new(a: &Authenticated) -> Box<Self> {
        Box::new(Self {
            method: a.method.clone(),
            user: a.user.clone(),
            pending: None,
        })
    }
}

impl Connection {
    /// AUTH from the client after CONNACK. Without enhanced authentication
    /// at CONNECT it is a protocol error ([MQTT-4.12.0-7]). AUTH 0x19 with
    /// the CONNECT's method ([MQTT-4.12.1-1]) starts a re-authentication
    /// answered by AUTH 0x18; the client's AUTH 0x18 completes it with AUTH
    /// 0x00, or fails it with DISCONNECT 0x87 ([MQTT-4.12.1-2]). The user
    /// name may not change. Other packets keep flowing meanwhile.
    pub(crate) fn handle_auth(&mut self, auth: Auth) -> Result<(), ProtocolError> {
        let Some(state) = self.auth.as_mut() else {
            return self.fail(ProtocolError::UnexpectedAuth);
        };
        if auth.properties.authentication_method.as_ref() != Some(&state.method) {
            return self.fail(ProtocolError::AuthMethodMismatch);
        }
        let result = match (auth.reason, state.pending.take()) {
            (ReasonCode::RE_AUTHENTICATE, None) => AuthExchange::start(
                &state.method,
                auth.properties.authentication_data.as_deref(),
                &self.cfg.auth,
                Some(&state.user),
            )
            .map(|(exchange, reply)| {
                state.pending = Some(exchange);
                reply
            }),
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(exchange)) => {
                exchange.handle_auth(&auth).map(|done| Auth {
                    reason: ReasonCode::SUCCESS,
                    properties: AuthProperties {
                        authentication_method: Some(done.method),
                        authentication_data: Some(done.data),
                        ..AuthProperties::default()
                    },
                })
            }
            (code, _) => Err(ProtocolError::UnexpectedAuthReason(code)),
        };
        match result {
            Ok(reply) => {
                if reply.reason == ReasonCode::SUCCESS {
                    tracing::debug!(client_id = %self.session.client_id(), "re-authenticated");
                }
                self.push_ack(Packet::Auth(reply));
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }
}
