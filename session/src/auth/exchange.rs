//! [`AuthExchange`]: one SCRAM exchange carried in MQTT 5 AUTH packets.

use super::scram::{server_nonce, ScramError, ScramMechanism, ScramServer};
use super::AuthPolicy;
use crate::{compact_str, ProtocolError, SessionConfig};
use bytes::Bytes;
use bytestring::ByteString;
use tern_codec::{Auth, AuthProperties, Connect, Packet, ReasonCode};

/// An enhanced authentication exchange in progress. SCRAM takes one round:
/// [`AuthExchange::start`] reads the client-first message (from CONNECT or
/// AUTH 0x19) and gives the AUTH 0x18 carrying the server-first message;
/// [`AuthExchange::handle_packet`] reads the client's AUTH 0x18
/// (client-final) and gives the [`Authenticated`] outcome, whose data is the
/// server-final message for the CONNACK (or AUTH 0x00).
#[derive(Debug)]
pub struct AuthExchange {
    method: ByteString,
    scram: ScramServer,
}

/// A completed enhanced authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The Authentication Method, to repeat in CONNACK ([MQTT-4.12.0-5]).
    pub method: ByteString,
    /// The authenticated user name.
    pub user: ByteString,
    /// The final Authentication Data (SCRAM server-final, `v=…`).
    pub data: Bytes,
}

impl AuthExchange {
    /// Starts the exchange a v5 CONNECT asks for with its Authentication
    /// Method; `None` when it has none (or is not v5). Call after
    /// [`Connection::check_connect`](crate::Connection::check_connect)
    /// accepted the CONNECT. On `Err`, refuse with a CONNACK carrying
    /// [`ProtocolError::reason_code`] and close ([MQTT-4.12.0-4]).
    pub fn for_connect(
        connect: &Connect,
        cfg: &SessionConfig,
    ) -> Option<Result<(Self, Auth), ProtocolError>> {
        if !connect.protocol.is_v5() {
            return None;
        }
        let method = connect.properties.authentication_method.as_ref()?;
        let data = connect.properties.authentication_data.as_deref();
        Some(Self::start(method, data, &cfg.auth, None))
    }

    /// Starts an exchange with `method` and the client's first data.
    /// `expected_user`: the user the client must authenticate as again
    /// (re-authentication may not change it). Returns the AUTH 0x18 to send
    /// ([MQTT-4.12.0-2]) with the same method ([MQTT-4.12.0-5]).
    pub fn start(
        method: &ByteString,
        data: Option<&[u8]>,
        policy: &AuthPolicy,
        expected_user: Option<&str>,
    ) -> Result<(Self, Auth), ProtocolError> {
        let nonce = server_nonce().map_err(ProtocolError::AuthenticationFailed)?;
        Self::start_with_nonce(method, data, policy, expected_user, &nonce)
    }

    /// [`AuthExchange::start`] with a given server nonce (for test vectors).
    pub(crate) fn start_with_nonce(
        method: &ByteString,
        data: Option<&[u8]>,
        policy: &AuthPolicy,
        expected_user: Option<&str>,
        nonce: &str,
    ) -> Result<(Self, Auth), ProtocolError> {
        let (Some(store), Some(mech)) =
            (policy.store.as_deref(), ScramMechanism::from_name(method))
        else {
            return Err(ProtocolError::BadAuthenticationMethod);
        };
        let failed = ProtocolError::AuthenticationFailed;
        let data = data.ok_or(failed(ScramError::MissingData))?;
        let (scram, server_first) = ScramServer::start(mech, store, data, nonce).map_err(failed)?;
        if expected_user.is_some_and(|u| u != scram.user()) {
            return Err(failed(ScramError::UserChanged));
        }
        // A copy: the decoded method is a slice of the read buffer.
        let method = compact_str(method);
        let reply = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(method.clone()),
                authentication_data: Some(Bytes::from(server_first)),
                ..AuthProperties::default()
            },
        };
        Ok((Self { method, scram }, reply))
    }

    /// The Authentication Method of this exchange.
    pub fn method(&self) -> &ByteString {
        &self.method
    }

    /// The client's next packet. Only AUTH 0x18 with the same method
    /// continues ([MQTT-4.12.0-3], [MQTT-4.12.0-5]); any other packet is a
    /// protocol error ([MQTT-3.1.2-30]; the caller handles DISCONNECT, which
    /// the client may send, by closing). A wrong proof or unknown user is
    /// [`ProtocolError::AuthenticationFailed`] (0x87).
    pub fn handle_packet(self, packet: Packet) -> Result<Authenticated, ProtocolError> {
        match packet {
            Packet::Auth(a) => self.handle_auth(&a),
            other => Err(ProtocolError::AuthInterrupted(other.name())),
        }
    }

    /// The client's AUTH 0x18 with the client-final message.
    pub(crate) fn handle_auth(self, auth: &Auth) -> Result<Authenticated, ProtocolError> {
        if auth.properties.authentication_method.as_ref() != Some(&self.method) {
            return Err(ProtocolError::AuthMethodMismatch);
        }
        if auth.reason != ReasonCode::CONTINUE_AUTHENTICATION {
            return Err(ProtocolError::UnexpectedAuthReason(auth.reason));
        }
        let failed = ProtocolError::AuthenticationFailed;
        let data = auth
            .properties
            .authentication_data
            .as_deref()
            .ok_or(failed(ScramError::MissingData))?;
        let user = ByteString::from(self.scram.user());
        let server_final = self.scram.finish(data).map_err(failed)?;
        Ok(Authenticated {
            method: self.method,
            user,
            data: Bytes::from(server_final),
        })
    }
}
