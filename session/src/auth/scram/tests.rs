//! SCRAM server tests: the RFC 7677 test vector, a client written from
//! RFC 5802 (used by the other auth tests too), and malformed messages.

use super::*;

/// A SCRAM client (RFC 5802 section 3), built from the hash crates
/// directly rather than from the server's helpers.
pub(crate) struct TestClient {
    mech: ScramMechanism,
    password: Vec<u8>,
    bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

fn mac(mech: ScramMechanism, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match mech {
        ScramMechanism::Sha256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

impl TestClient {
    /// A client for `user` (SASL-escaped here) with a given nonce.
    pub(crate) fn new(mech: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        let escaped = user.replace('=', "=3D").replace(',', "=2C");
        Self {
            mech,
            password: password.as_bytes().to_vec(),
            bare: format!("n={escaped},r={nonce}"),
            nonce: nonce.to_owned(),
            server_signature: Vec::new(),
        }
    }

    /// `n,,n=user,r=nonce`.
    pub(crate) fn client_first(&self) -> String {
        format!("n,,{}", self.bare)
    }

    /// The client-final message answering `server_first`.
    pub(crate) fn client_final(&mut self, server_first: &str) -> String {
        let mut parts = server_first.split(',');
        let r = parts.next().unwrap().strip_prefix("r=").unwrap();
        let s = parts.next().unwrap().strip_prefix("s=").unwrap();
        let i: u32 = parts
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(r.starts_with(&self.nonce), "server nonce extends ours");
        let salt = B64.decode(s).unwrap();
        let mut salted = vec![0u8; self.mech.len()];
        match self.mech {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, i, &mut salted)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(&self.password, &salt, i, &mut salted)
            }
        }
        let client_key = mac(self.mech, &salted, b"Client Key");
        let stored_key = match self.mech {
            ScramMechanism::Sha256 => Sha256::digest(&client_key).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(&client_key).to_vec(),
        };
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = mac(self.mech, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mac(self.mech, &salted, b"Server Key");
        self.server_signature = mac(self.mech, &server_key, auth_message.as_bytes());
        format!("{without_proof},p={}", B64.encode(proof))
    }

    /// True when `server_final` proves the server knows the credential.
    pub(crate) fn verifies(&self, server_final: &[u8]) -> bool {
        server_final == format!("v={}", B64.encode(&self.server_signature)).as_bytes()
    }
}

/// A store with one user.
pub(crate) struct OneUser {
    pub(crate) user: &'static str,
    pub(crate) cred: ScramCredential,
}

impl CredentialStore for OneUser {
    fn check_password(&self, _: &str, _: &[u8]) -> bool {
        false
    }

    fn scram(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        (user == self.user && mech == ScramMechanism::Sha256).then(|| self.cred.clone())
    }
}

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The RFC 7677 user: "user" / "pencil".
pub(crate) fn rfc_store() -> OneUser {
    let salt = B64.decode(RFC_SALT).unwrap();
    OneUser {
        user: "user",
        cred: ScramCredential::derive(ScramMechanism::Sha256, b"pencil", &salt, 4096),
    }
}

fn start(store: &OneUser, first: &str) -> Result<(ScramServer, String), ScramError> {
    ScramServer::start(
        ScramMechanism::Sha256,
        store,
        first.as_bytes(),
        RFC_SERVER_NONCE,
    )
}

// RFC 7677 section 3: the server produces exactly the test vector.
#[test]
fn rfc7677_test_vector_server() {
    let store = rfc_store();
    let (server, server_first) = start(&store, RFC_CLIENT_FIRST).unwrap();
    assert_eq!(server_first, RFC_SERVER_FIRST);
    assert_eq!(server.user(), "user");
    let server_final = server.finish(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(server_final, RFC_SERVER_FINAL);
}

// The test client reproduces the RFC 7677 client messages, so the other
// tests' client is checked against the vector too.
#[test]
fn rfc7677_test_vector_client() {
    let mut client = TestClient::new(ScramMechanism::Sha256, "user", "pencil", RFC_CLIENT_NONCE);
    assert_eq!(client.client_first(), RFC_CLIENT_FIRST);
    assert_eq!(client.client_final(RFC_SERVER_FIRST), RFC_CLIENT_FINAL);
    assert!(client.verifies(RFC_SERVER_FINAL.as_bytes()));
    assert!(!client.verifies(b"v=AAAA"));
}

#[test]
fn sha512_round_trip_and_wrong_password() {
    let cred = ScramCredential::derive(ScramMechanism::Sha512, b"secret", b"salty", 4096);
    assert_eq!(cred.stored_key.len(), 64);
    struct Store(ScramCredential);
    impl CredentialStore for Store {
        fn check_password(&self, _: &str, _: &[u8]) -> bool {
            false
        }
        fn scram(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
            (user == "u" && mech == ScramMechanism::Sha512).then(|| self.0.clone())
        }
    }
    let store = Store(cred);
    for (password, ok) in [("secret", true), ("Secret", false)] {
        let mut client = TestClient::new(ScramMechanism::Sha512, "u", password, "abc");
        let (server, first) = ScramServer::start(
            ScramMechanism::Sha512,
            &store,
            client.client_first().as_bytes(),
            "xyz",
        )
        .unwrap();
        let fin = client.client_final(&first);
        match server.finish(fin.as_bytes()) {
            Ok(v) => assert!(ok && client.verifies(v.as_bytes()), "{password}"),
            Err(e) => assert!(!ok && e == ScramError::InvalidProof, "{password}: {e}"),
        }
    }
}

#[test]
fn wrong_password_and_unknown_user_fail_alike() {
    let store = rfc_store();
    let mut salts = Vec::new();
    for (user, password) in [("user", "pencil!"), ("nobody", "pencil"), ("nobody", "x")] {
        let mut client = TestClient::new(ScramMechanism::Sha256, user, password, "n0nce");
        let (server, first) = start(&store, &client.client_first()).unwrap();
        salts.push(first.split(',').nth(1).unwrap().to_owned());
        assert!(first.ends_with(",i=4096"), "{first}");
        let fin = client.client_final(&first);
        assert_eq!(server.finish(fin.as_bytes()), Err(ScramError::InvalidProof));
    }
    // An unknown user gets the same salt every time, as a real one would.
    assert_eq!(salts[1], salts[2]);
    assert_ne!(salts[0], salts[1]);
}

#[test]
fn client_final_must_match_the_exchange() {
    let store = rfc_store();
    let tamper = |from: &str, to: &str| {
        let (server, _) = start(&store, RFC_CLIENT_FIRST).unwrap();
        server.finish(RFC_CLIENT_FINAL.replacen(from, to, 1).as_bytes())
    };
    assert_eq!(tamper("r=rOpr", "r=XOpr"), Err(ScramError::Nonce));
    assert_eq!(tamper("c=biws", "c=eSws"), Err(ScramError::Binding));
    assert_eq!(tamper("p=dHzb", "p=dHzc"), Err(ScramError::InvalidProof));
    assert_eq!(
        tamper(",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", ""),
        Err(ScramError::Malformed("client-final"))
    );
    assert_eq!(
        tamper("p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "p=AAAA"),
        Err(ScramError::InvalidProof),
        "short proof"
    );
    assert_eq!(
        tamper("p=dHzb", "p=!Hzb"),
        Err(ScramError::Malformed("client-final"))
    );
}

#[test]
fn client_first_grammar() {
    let store = rfc_store();
    let err = |first: &str| start(&store, first).err();
    assert_eq!(
        err("p=tls-unique,,n=user,r=x"),
        Some(ScramError::ChannelBinding)
    );
    assert_eq!(err("n,,m=ext,n=user,r=x"), Some(ScramError::Extension));
    assert_eq!(
        err("n,,n=user"),
        Some(ScramError::Malformed("client-first"))
    );
    assert_eq!(
        err("n,,n=user,r="),
        Some(ScramError::Malformed("client-first"))
    );
    assert_eq!(
        err("n,,r=x,n=user"),
        Some(ScramError::Malformed("client-first"))
    );
    assert_eq!(
        err("x,,n=user,r=x"),
        Some(ScramError::Malformed("client-first"))
    );
    assert_eq!(err("n,,n=,r=x"), Some(ScramError::Malformed("user name")));
    assert_eq!(
        err("n,,n=a=41,r=x"),
        Some(ScramError::Malformed("user name"))
    );
    assert_eq!(err("n,a=other,n=user,r=x"), Some(ScramError::AuthzId));
    assert_eq!(
        err("n,,n=user,r=x,ext=1"),
        None,
        "optional extensions are ignored"
    );
    assert_eq!(err("y,a=user,n=user,r=x"), None, "authzid = user is fine");
    let long = format!("n,,n=user,r={}", "x".repeat(MAX_SCRAM_MESSAGE));
    assert_eq!(err(&long), Some(ScramError::TooLong));
    assert_eq!(
        ScramServer::start(ScramMechanism::Sha256, &store, b"n,,n=\xff,r=x", "s").err(),
        Some(ScramError::Malformed("client-first"))
    );
}

#[test]
fn sasl_names_decode() {
    assert_eq!(sasl_name("a=2Cb=3Dc").unwrap(), "a,b=c");
    assert!(sasl_name("a=2").is_err());
    assert!(sasl_name("=").is_err());
    // A client escapes, the server decodes: the escaped user is found.
    let store = OneUser {
        user: "a,b=c",
        ..rfc_store()
    };
    let mut client = TestClient::new(ScramMechanism::Sha256, "a,b=c", "pencil", "n");
    let (server, first) = start(&store, &client.client_first()).unwrap();
    assert_eq!(server.user(), "a,b=c");
    let v = server
        .finish(client.client_final(&first).as_bytes())
        .unwrap();
    assert!(client.verifies(v.as_bytes()));
}

#[test]
fn mechanism_names_and_debug_hide_keys() {
    assert_eq!(
        ScramMechanism::from_name("SCRAM-SHA-256"),
        Some(ScramMechanism::Sha256)
    );
    assert_eq!(
        ScramMechanism::from_name("SCRAM-SHA-512"),
        Some(ScramMechanism::Sha512)
    );
    assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
    assert_eq!(ScramMechanism::from_name("PLAIN"), None);
    let cred = rfc_store().cred;
    let shown = format!("{cred:?}");
    assert!(shown.contains("iterations: 4096"), "{shown}");
    assert!(!shown.contains("key"), "{shown}");
    let nonce = server_nonce().unwrap();
    assert_eq!(nonce.len(), 24);
    assert!(!nonce.contains(','));
    assert_ne!(nonce, server_nonce().unwrap());
}
