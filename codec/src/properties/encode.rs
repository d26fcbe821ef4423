//! Property encoders. One `visit` per property struct lists its properties in
//! a fixed order; a [`Counter`] sink sizes and validates a block, a [`Writer`]
//! sink writes it, so the size pass and the write pass cannot disagree.
//!
//! PUBLISH order: the per-receiver properties (Message Expiry Interval, Topic
//! Alias, Subscription Identifiers) first, then the forwarded ones (Payload
//! Format Indicator, Content Type, Response Topic, Correlation Data, User
//! Properties in order), which `PublishTemplate` copies as one block.

use bytes::BufMut;

use super::id;
use crate::error::EncodeError;
use crate::types::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UserProperty, WillProperties,
};
use crate::wire::{field_len, put_field, put_varint, varint_len, MAX_VARINT};

/// Receives the properties of one block in order.
pub(crate) trait PropSink {
    fn byte(&mut self, id: u8, v: u8);
    fn u16(&mut self, id: u8, v: u16);
    fn u32(&mut self, id: u8, v: u32);
    fn varint(&mut self, id: u8, v: u32);
    /// A UTF-8 string or binary data property.
    fn field(&mut self, id: u8, v: &[u8]);
    fn pair(&mut self, id: u8, name: &[u8], value: &[u8]);
}

/// Sizes a property block and records the first encoding error.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    pub(crate) len: usize,
    pub(crate) err: Option<EncodeError>,
}

impl Counter {
    fn add_field(&mut self, n: usize) {
        match field_len(n) {
            Ok(len) => self.len += len,
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
    }

    /// The block length, or the first error seen.
    pub(crate) fn finish(self) -> Result<usize, EncodeError> {
        match self.err {
            Some(e) => Err(e),
            None if self.len > MAX_VARINT => Err(EncodeError::PacketTooLarge(self.len)),
            None => Ok(self.len),
        }
    }
}

impl PropSink for Counter {
    fn byte(&mut self, _: u8, _: u8) {
        self.len += 2;
    }
    fn u16(&mut self, _: u8, _: u16) {
        self.len += 3;
    }
    fn u32(&mut self, _: u8, _: u32) {
        self.len += 5;
    }
    fn varint(&mut self, _: u8, v: u32) {
        // The only Variable Byte Integer property is the Subscription Identifier.
        if v == 0 || v as usize > MAX_VARINT {
            self.err
                .get_or_insert(EncodeError::InvalidSubscriptionIdentifier(v));
        } else {
            self.len += 1 + varint_len(v as usize);
        }
    }
    fn field(&mut self, _: u8, v: &[u8]) {
        self.len += 1;
        self.add_field(v.len());
    }
    fn pair(&mut self, _: u8, name: &[u8], value: &[u8]) {
        self.len += 1;
        self.add_field(name.len());
        self.add_field(value.len());
    }
}

/// Writes properties that a [`Counter`] has validated.
#[derive(Debug)]
pub(crate) struct Writer<'a, B: BufMut>(pub(crate) &'a mut B);

impl<B: BufMut> PropSink for Writer<'_, B> {
    fn byte(&mut self, id: u8, v: u8) {
        self.0.put_u8(id);
        self.0.put_u8(v);
    }
    fn u16(&mut self, id: u8, v: u16) {
        self.0.put_u8(id);
        self.0.put_u16(v);
    }
    fn u32(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        self.0.put_u32(v);
    }
    fn varint(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        put_varint(self.0, v as usize);
    }
    fn field(&mut self, id: u8, v: &[u8]) {
        self.0.put_u8(id);
        put_field(self.0, v);
    }
    fn pair(&mut self, id: u8, name: &[u8], value: &[u8]) {
        self.0.put_u8(id);
        put_field(self.0, name);
        put_field(self.0, value);
    }
}

/// A property struct that can list its properties into a sink.
pub(crate) trait Properties {
    fn visit<S: PropSink>(&self, s: &mut S);
}

/// Length of the properties alone (without the property length prefix).
pub(crate) fn props_len(p: &impl Properties) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    p.visit(&mut c);
    c.finish()
}

/// Writes the property length (`len` from [`props_len`]) and the properties.
pub(crate) fn put_props(dst: &mut impl BufMut, p: &impl Properties, len: usize) {
    put_varint(dst, len);
    p.visit(&mut Writer(dst));
}

fn opt_field<S: PropSink>(s: &mut S, id: u8, v: Option<&[u8]>) {
    if let Some(v) = v {
        s.field(id, v);
    }
}

fn users<S: PropSink>(s: &mut S, props: &[UserProperty]) {
    for (name, value) in props {
        s.pair(id::USER_PROPERTY, name.as_bytes(), value.as_bytes());
    }
}

/// User properties alone (UNSUBSCRIBE).
#[derive(Debug)]
pub(crate) struct UserProps<'a>(pub(crate) &'a [UserProperty]);

impl Properties for UserProps<'_> {
    fn visit<S: PropSink>(&self, s: &mut S) {
        users(s, self.0);
    }
}

impl Properties for ConnectProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.u32(id::SESSION_EXPIRY_INTERVAL, v);
        }
        if let Some(v) = self.receive_maximum {
            s.u16(id::RECEIVE_MAXIMUM, v);
        }
        if let Some(v) = self.maximum_packet_size {
            s.u32(id::MAXIMUM_PACKET_SIZE, v);
        }
        if let Some(v) = self.topic_alias_maximum {
            s.u16(id::TOPIC_ALIAS_MAXIMUM, v);
        }
        if let Some(v) = self.request_response_information {
            s.byte(id::REQUEST_RESPONSE_INFORMATION, u8::from(v));
        }
        if let Some(v) = self.request_problem_information {
            s.byte(id::REQUEST_PROBLEM_INFORMATION, u8::from(v));
        }
        opt_field(
            s,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        users(s, &self.user_properties);
    }
}

impl Properties for WillProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        if let Some(v) = self.will_delay_interval {
            s.u32(id::WILL_DELAY_INTERVAL, v);
        }
        if let Some(v) = self.payload_format_indicator {
            s.byte(id::PAYLOAD_FORMAT_INDICATOR, v);
        }
        if let Some(v) = self.message_expiry_interval {
            s.u32(id::MESSAGE_EXPIRY_INTERVAL, v);
        }
        opt_field(
            s,
            id::CONTENT_TYPE,
            self.content_type.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::RESPONSE_TOPIC,
            self.response_topic.as_deref().map(str::as_bytes),
        );
        opt_field(s, id::CORRELATION_DATA, self.correlation_data.as_deref());
        users(s, &self.user_properties);
    }
}

impl Properties for ConnAckProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.u32(id::SESSION_EXPIRY_INTERVAL, v);
        }
        if let Some(v) = self.receive_maximum {
            s.u16(id::RECEIVE_MAXIMUM, v);
        }
        if let Some(v) = self.maximum_qos {
            s.byte(id::MAXIMUM_QOS, v as u8);
        }
        if let Some(v) = self.retain_available {
            s.byte(id::RETAIN_AVAILABLE, u8::from(v));
        }
        if let Some(v) = self.maximum_packet_size {
            s.u32(id::MAXIMUM_PACKET_SIZE, v);
        }
        opt_field(
            s,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier
                .as_deref()
                .map(str::as_bytes),
        );
        if let Some(v) = self.topic_alias_maximum {
            s.u16(id::TOPIC_ALIAS_MAXIMUM, v);
        }
        opt_field(
            s,
            id::REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        if let Some(v) = self.wildcard_subscription_available {
            s.byte(id::WILDCARD_SUBSCRIPTION_AVAILABLE, u8::from(v));
        }
        if let Some(v) = self.subscription_identifiers_available {
            s.byte(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, u8::from(v));
        }
        if let Some(v) = self.shared_subscription_available {
            s.byte(id::SHARED_SUBSCRIPTION_AVAILABLE, u8::from(v));
        }
        if let Some(v) = self.server_keep_alive {
            s.u16(id::SERVER_KEEP_ALIVE, v);
        }
        opt_field(
            s,
            id::RESPONSE_INFORMATION,
            self.response_information.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::SERVER_REFERENCE,
            self.server_reference.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        users(s, &self.user_properties);
    }
}

/// The PUBLISH properties that depend on the receiver, in encoding order.
pub(crate) fn visit_publish_dynamic<S: PropSink>(
    s: &mut S,
    message_expiry_interval: Option<u32>,
    topic_alias: Option<u16>,
    subscription_identifiers: &[u32],
) {
    if let Some(v) = message_expiry_interval {
        s.u32(id::MESSAGE_EXPIRY_INTERVAL, v);
    }
    if let Some(v) = topic_alias {
        s.u16(id::TOPIC_ALIAS, v);
    }
    for &v in subscription_identifiers {
        s.varint(id::SUBSCRIPTION_IDENTIFIER, v);
    }
}

/// The PUBLISH properties forwarded unaltered, in encoding order.
pub(crate) fn visit_publish_static<S: PropSink>(s: &mut S, p: &PublishProperties) {
    if let Some(v) = p.payload_format_indicator {
        s.byte(id::PAYLOAD_FORMAT_INDICATOR, v);
    }
    opt_field(
        s,
        id::CONTENT_TYPE,
        p.content_type.as_deref().map(str::as_bytes),
    );
    opt_field(
        s,
        id::RESPONSE_TOPIC,
        p.response_topic.as_deref().map(str::as_bytes),
    );
    opt_field(s, id::CORRELATION_DATA, p.correlation_data.as_deref());
    users(s, &p.user_properties);
}

impl Properties for PublishProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        visit_publish_dynamic(
            s,
            self.message_expiry_interval,
            self.topic_alias.map(|a| a.get()),
            &self.subscription_identifiers,
        );
        visit_publish_static(s, self);
    }
}

impl Properties for AckProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        opt_field(
            s,
            id::REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}

impl Properties for SubscribeProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        if let Some(v) = self.subscription_identifier {
            s.varint(id::SUBSCRIPTION_IDENTIFIER, v);
        }
        users(s, &self.user_properties);
    }
}

impl Properties for DisconnectProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        if let Some(v) = self.session_expiry_interval {
            s.u32(id::SESSION_EXPIRY_INTERVAL, v);
        }
        opt_field(
            s,
            id::REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::SERVER_REFERENCE,
            self.server_reference.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}

impl Properties for AuthProperties {
    fn visit<S: PropSink>(&self, s: &mut S) {
        opt_field(
            s,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref().map(str::as_bytes),
        );
        opt_field(
            s,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        opt_field(
            s,
            id::REASON_STRING,
            self.reason_string.as_deref().map(str::as_bytes),
        );
        users(s, &self.user_properties);
    }
}
