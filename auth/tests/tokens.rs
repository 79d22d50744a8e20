//! Token verification against real keys (fixtures in tests/keys, made with openssl).

use dojo_auth::{
    Claims, Grants, KeyError, Minter, Permission, TokenError, Verifier, VerifierConfig, unix_now,
};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes";
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const OTHER_RSA_PRIVATE: &[u8] = include_bytes!("keys/other_rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("keys/ec_public.pem");

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa key")
}

fn claims() -> serde_json::Value {
    json!({ "sub": "user_1", "name": "Ada", "email": "ada@example.com", "exp": unix_now() + 600 })
}

fn hs_verifier() -> Verifier {
    Verifier::new(&VerifierConfig { hs256_secret: Some(SECRET.to_vec()), ..Default::default() })
        .expect("verifier")
}

fn pem_verifier(pem: &[u8]) -> Verifier {
    Verifier::new(&VerifierConfig { public_key_pem: Some(pem.to_vec()), ..Default::default() })
        .expect("verifier")
}

fn b64(bytes: &[u8]) -> String {
    // base64url without padding, written out so the test does not trust the library it tests.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn a_valid_hs256_token_gives_the_identity_and_its_grants() {
    let mut body = claims();
    body["grants"] = json!({ "team-a/*": "write" });
    let token = sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &body);
    let identity = hs_verifier().verify(&token).expect("valid");
    assert_eq!(identity.subject, "user_1");
    assert_eq!(identity.name.as_deref(), Some("Ada"));
    assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
    let grants = identity.grants.clone().expect("grants");
    assert_eq!(grants.permission_for("team-a/x"), Some(Permission::Write));
    assert_eq!(grants.permission_for("team-b/x"), None);
    assert!(identity.seconds_left() > 500);
}

#[test]
fn an_email_the_token_says_is_unverified_is_not_taken() {
    let key = EncodingKey::from_secret(SECRET);
    let mut unverified = claims();
    unverified["email_verified"] = json!(false);
    let identity = hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &unverified)).expect("valid");
    assert_eq!(identity.email, None, "an unverified email must not reach invitations or the users table");
    assert_eq!(identity.name.as_deref(), Some("Ada"), "the rest of the token still counts");

    let mut verified = claims();
    verified["email_verified"] = json!(true);
    let identity = hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &verified)).expect("valid");
    assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
}

#[test]
fn minted_tokens_verify() {
    let mut claims = Claims::new("service:worker", 60);
    claims.grants = Some(Grants([("room-1".to_owned(), Permission::Write)].into()));
    let token = Minter::hs256(SECRET).mint(&claims).expect("mint");
    let identity = hs_verifier().verify(&token).expect("valid");
    assert_eq!(identity.subject, "service:worker");
    assert_eq!(identity.grants, claims.grants);
    assert!(!identity.manage_workflows, "absent means no");
}

#[test]
fn managing_other_users_workflows_is_an_explicit_boolean_claim() {
    let mut claims = Claims::new("service:admin", 60);
    claims.grants = Some(Grants([("team-*".to_owned(), Permission::Admin)].into()));
    claims.manage_workflows = true;
    let token = Minter::hs256(SECRET).mint(&claims).expect("mint");
    assert!(hs_verifier().verify(&token).expect("valid").manage_workflows);
    // Anything but a boolean is a bad token, not a silent "no" or "yes".
    let mut body = self::claims();
    body["manage_workflows"] = json!("yes");
    let token = sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &body);
    assert!(matches!(hs_verifier().verify(&token), Err(TokenError::BadClaims(_))));
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    let key = EncodingKey::from_secret(SECRET);
    let mut expired = claims();
    expired["exp"] = json!(unix_now() - 3600);
    assert_eq!(hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &expired)), Err(TokenError::Expired));
    let mut early = claims();
    early["nbf"] = json!(unix_now() + 3600);
    assert_eq!(
        hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &early)),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn tokens_without_exp_or_sub_are_refused() {
    let key = EncodingKey::from_secret(SECRET);
    let no_exp = json!({ "sub": "user_1" });
    assert_eq!(
        hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &no_exp)),
        Err(TokenError::MissingClaim("exp".into()))
    );
    let no_sub = json!({ "exp": unix_now() + 60 });
    assert_eq!(
        hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &no_sub)),
        Err(TokenError::MissingClaim("sub".into()))
    );
    let empty_sub = json!({ "sub": " ", "exp": unix_now() + 60 });
    assert_eq!(
        hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &empty_sub)),
        Err(TokenError::MissingClaim("sub".into()))
    );
    let bad_grants = json!({ "sub": "u", "exp": unix_now() + 60, "grants": { "r": "owner" } });
    assert!(matches!(
        hs_verifier().verify(&sign(Algorithm::HS256, None, &key, &bad_grants)),
        Err(TokenError::BadClaims(_))
    ));
}

#[test]
fn a_forged_signature_is_refused() {
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another secret, also 32 bytes long!!"),
        &claims(),
    );
    assert_eq!(hs_verifier().verify(&token), Err(TokenError::BadSignature));
    // Claims swapped under a valid signature.
    let valid = sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &claims());
    let parts: Vec<&str> = valid.split('.').collect();
    let mut admin = claims();
    admin["grants"] = json!({ "*": "admin" });
    let tampered = format!("{}.{}.{}", parts[0], b64(admin.to_string().as_bytes()), parts[2]);
    assert_eq!(hs_verifier().verify(&tampered), Err(TokenError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        assert_eq!(hs_verifier().verify(&token), Err(TokenError::Malformed));
        assert_eq!(pem_verifier(RSA_PUBLIC).verify(&token), Err(TokenError::Malformed));
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The algorithm-confusion attack: the public key is public, so an attacker can HMAC with it.
    let token = sign(Algorithm::HS256, None, &EncodingKey::from_secret(RSA_PUBLIC), &claims());
    assert!(matches!(pem_verifier(RSA_PUBLIC).verify(&token), Err(TokenError::AlgorithmNotAccepted(_))));
    // And an RS256 token is not accepted by a verifier that only knows a shared secret.
    let rs = sign(Algorithm::RS256, None, &rsa(), &claims());
    assert!(matches!(hs_verifier().verify(&rs), Err(TokenError::AlgorithmNotAccepted(_))));
}

#[test]
fn rs256_and_es256_public_keys_verify_their_own_signatures_only() {
    let token = sign(Algorithm::RS256, None, &rsa(), &claims());
    assert_eq!(pem_verifier(RSA_PUBLIC).verify(&token).expect("rs256").subject, "user_1");
    let other =
        sign(Algorithm::RS256, None, &EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE).expect("key"), &claims());
    assert_eq!(pem_verifier(RSA_PUBLIC).verify(&other), Err(TokenError::BadSignature));
    let es = sign(Algorithm::ES256, None, &EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec key"), &claims());
    assert_eq!(pem_verifier(EC_PUBLIC).verify(&es).expect("es256").subject, "user_1");
    assert!(pem_verifier(RSA_PUBLIC).verify(&es).is_err());
}

#[test]
fn jwks_keys_are_chosen_by_key_id() {
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec key");
    let mut rsa_jwk = Jwk::from_encoding_key(&rsa(), Algorithm::RS256).expect("jwk");
    rsa_jwk.common.key_id = Some("rsa-1".into());
    let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("jwk");
    ec_jwk.common.key_id = Some("ec-1".into());
    // A JWK from a private key carries its private parts; publish only the public ones.
    let public = |jwk: Jwk| {
        let mut value = serde_json::to_value(jwk).expect("jwk json");
        if let Some(object) = value.as_object_mut() {
            object.remove("d");
        }
        value
    };
    let jwks = json!({ "keys": [public(rsa_jwk), public(ec_jwk)] });
    let verifier = Verifier::new(&VerifierConfig {
        jwks_json: Some(jwks.to_string().into_bytes()),
        ..Default::default()
    })
    .expect("verifier");
    assert!(verifier.verify(&sign(Algorithm::RS256, Some("rsa-1"), &rsa(), &claims())).is_ok());
    assert!(verifier.verify(&sign(Algorithm::ES256, Some("ec-1"), &ec, &claims())).is_ok());
    assert!(
        verifier.verify(&sign(Algorithm::RS256, None, &rsa(), &claims())).is_ok(),
        "no kid: tried in turn"
    );
    assert_eq!(
        verifier.verify(&sign(Algorithm::RS256, Some("rsa-2"), &rsa(), &claims())),
        Err(TokenError::UnknownKey)
    );
    let other = EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE).expect("key");
    assert_eq!(
        verifier.verify(&sign(Algorithm::RS256, Some("rsa-1"), &other, &claims())),
        Err(TokenError::BadSignature)
    );
    // Parsed from the set, parsed back out: `JwkSet` is the shape providers publish.
    assert_eq!(serde_json::from_value::<JwkSet>(jwks).expect("set").keys.len(), 2);
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let verifier = Verifier::new(&VerifierConfig {
        hs256_secret: Some(SECRET.to_vec()),
        issuers: vec!["https://id.example.com".into()],
        audiences: vec!["dojo".into()],
        ..Default::default()
    })
    .expect("verifier");
    let key = EncodingKey::from_secret(SECRET);
    let mut good = claims();
    good["iss"] = json!("https://id.example.com");
    good["aud"] = json!("dojo");
    assert!(verifier.verify(&sign(Algorithm::HS256, None, &key, &good)).is_ok());
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        verifier.verify(&sign(Algorithm::HS256, None, &key, &wrong_aud)),
        Err(TokenError::WrongAudience)
    );
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    assert_eq!(
        verifier.verify(&sign(Algorithm::HS256, None, &key, &wrong_iss)),
        Err(TokenError::WrongIssuer)
    );
    let mut no_aud = good.clone();
    no_aud.as_object_mut().expect("object").remove("aud");
    assert_eq!(
        verifier.verify(&sign(Algorithm::HS256, None, &key, &no_aud)),
        Err(TokenError::MissingClaim("aud".into()))
    );
}

#[test]
fn garbage_is_malformed() {
    for token in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.!!!.x"] {
        assert_eq!(hs_verifier().verify(token), Err(TokenError::Malformed), "{token:?}");
    }
}

#[test]
fn unusable_key_configurations_are_reported() {
    let weak = VerifierConfig { hs256_secret: Some(b"short".to_vec()), ..Default::default() };
    assert!(matches!(Verifier::new(&weak), Err(KeyError::WeakSecret)));
    let bad_pem = VerifierConfig { public_key_pem: Some(b"not a key".to_vec()), ..Default::default() };
    assert!(matches!(Verifier::new(&bad_pem), Err(KeyError::BadPem(_))));
    let empty = VerifierConfig { jwks_json: Some(br#"{"keys": []}"#.to_vec()), ..Default::default() };
    assert!(matches!(Verifier::new(&empty), Err(KeyError::EmptyJwks)));
    let junk = VerifierConfig { jwks_json: Some(b"{".to_vec()), ..Default::default() };
    assert!(matches!(Verifier::new(&junk), Err(KeyError::BadJwks(_))));
    assert!(matches!(Verifier::new(&VerifierConfig::default()), Err(KeyError::NoKeys)));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let config = VerifierConfig { hs256_secret: Some(SECRET.to_vec()), ..Default::default() };
    let printed =
        format!("{config:?} {:?} {:?}", Verifier::new(&config).expect("verifier"), Minter::hs256(SECRET));
    assert!(!printed.contains("thirty-two"), "{printed}");
}
