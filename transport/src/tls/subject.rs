//! The subject of an X.509 certificate, read from its DER: the distinguished
//! name as RFC 2253 writes it (what Mosquitto's `use_subject_as_username`
//! gives, e.g. `CN=alice,O=Example,C=GB`) and its common name (what
//! `use_identity_as_username` gives). A small DER walk over the fields
//! before the subject; rustls has verified the certificate already.

/// One DER element: tag, contents, and the rest of the input.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject Name's contents (the sequence of RDN sets) of a certificate.
fn subject_name(cert: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, cert, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version, optional.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, subject, _) = element(rest)? else {
        return None;
    };
    Some(subject)
}

/// The short name OpenSSL and RFC 2253 use for an attribute type.
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// The dotted form of an OID, for attribute types without a short name.
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    let mut first = true;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if first {
                let (a, b) = if value < 80 {
                    (value / 40, value % 40)
                } else {
                    (2, value - 80)
                };
                out.push_str(&format!("{a}.{b}"));
                first = false;
            } else {
                out.push_str(&format!(".{value}"));
            }
            value = 0;
        }
    }
    out
}

/// One attribute value as text: the string types as they are (BMPString
/// decoded), anything else as `#` and hex (RFC 2253 2.4).
fn value_text(tag: u8, value: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, T61String, IA5String, VisibleString.
        0x0c | 0x13 | 0x14 | 0x16 | 0x1a => String::from_utf8_lossy(value).into_owned(),
        // BMPString: UTF-16BE.
        0x1e => {
            let units = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => {
            let mut s = String::from("#");
            for b in value {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// Escapes a value as RFC 2253 2.4 asks.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A client certificate's subject, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSubject {
    /// The distinguished name in RFC 2253 form (last RDN first, `,`
    /// between RDNs, `+` within one), as Mosquitto's
    /// `use_subject_as_username` writes it.
    pub subject: String,
    /// The (last) common name, as `use_identity_as_username` takes it.
    pub common_name: Option<String>,
}

impl CertSubject {
    /// Reads the subject of a DER certificate; `None` when it cannot be
    /// read.
    pub fn from_der(cert: &[u8]) -> Option<Self> {
        let mut rdns = Vec::new();
        let mut common_name = None;
        let mut rest = subject_name(cert)?;
        while !rest.is_empty() {
            let (SET, mut set, next) = element(rest)? else {
                return None;
            };
            rest = next;
            let mut rdn = String::new();
            while !set.is_empty() {
                let (SEQUENCE, attr, next) = element(set)? else {
                    return None;
                };
                set = next;
                let (OID, oid, value) = element(attr)? else {
                    return None;
                };
                let (tag, value, _) = element(value)?;
                let text = value_text(tag, value);
                if !rdn.is_empty() {
                    rdn.push('+');
                }
                match attribute_name(oid) {
                    Some(name) => rdn.push_str(name),
                    None => rdn.push_str(&dotted(oid)),
                }
                rdn.push('=');
                escape(&text, &mut rdn);
                if oid == [0x55, 0x04, 0x03] {
                    common_name = Some(text);
                }
            }
            rdns.push(rdn);
        }
        rdns.reverse();
        Some(Self {
            subject: rdns.join(","),
            common_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "GB");
        dn.push(rcgen::DnType::OrganizationName, "Example, Ltd");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let got = CertSubject::from_der(cert.der()).unwrap();
        assert_eq!(got.subject, "CN=alice,O=Example\\, Ltd,C=GB");
        assert_eq!(got.common_name.as_deref(), Some("alice"));
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert_eq!(CertSubject::from_der(&[]), None);
        assert_eq!(
            CertSubject::from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(CertSubject::from_der(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        assert_eq!(dotted(&[0x2a, 0x86, 0x48]), "1.2.840");
    }
}
