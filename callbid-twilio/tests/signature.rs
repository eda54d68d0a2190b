//! Every published signature vector (twilio-python `test_request_validator.py`,
//! twilio-node `validation.spec.js`, auth token `12345`), the SharedKey variant,
//! and a property test over random URLs and parameters.

use callbid_twilio::signature::{
    body_sha256, RequestValidator, SignatureAlgorithm, SignatureError,
};
use proptest::prelude::*;

const TOKEN: &str = "12345";
const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const BODY: &str = r#"{"property": "value", "boolean": true}"#;
const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

fn params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
}

fn v() -> RequestValidator {
    RequestValidator::new(TOKEN)
}

#[test]
fn computes_the_reference_signature() {
    assert_eq!(
        v().compute_signature(URL, &params()),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    assert!(v().validate(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
}

#[test]
fn rejects_a_wrong_signature() {
    assert!(!v().validate(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B9="));
    assert!(!v().validate(URL, &params(), ""));
    let e = v()
        .check(URL, &params(), "nope", SignatureAlgorithm::HmacSha1)
        .unwrap_err();
    assert!(matches!(e, SignatureError::Mismatch { .. }));
}

#[test]
fn custom_port_is_stripped() {
    let url = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
    assert!(v().validate(url, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
}

#[test]
fn default_https_port_signature() {
    let with = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    assert_eq!(
        v().compute_signature(with, &params()),
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    );
    // Twilio signed with :443; the app sees the URL without it, and vice versa.
    assert!(v().validate(URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
    assert!(v().validate(with, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
    assert!(v().validate(with, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
}

#[test]
fn default_http_port_signature() {
    let with = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
    let without = "http://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        v().compute_signature(with, &params()),
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    );
    assert!(v().validate(without, &params(), "0ZXoZLH/DfblKGATFgpif+LLRf4="));
    assert!(v().validate(with, &params(), "0ZXoZLH/DfblKGATFgpif+LLRf4="));
}

#[test]
fn custom_http_port_signature() {
    let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
    assert_eq!(
        v().compute_signature(url, &params()),
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    );
    assert!(v().validate(url, &params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
}

#[test]
fn multi_valued_parameters_sorted_and_deduplicated() {
    let p = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ];
    assert_eq!(
        v().compute_signature(URL, &p),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
    assert!(v().validate(URL, &p, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
    // Order of arrival does not matter.
    let mut rev = p;
    rev.reverse();
    assert!(v().validate(URL, &rev, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
}

#[test]
fn json_body_with_body_sha256() {
    assert_eq!(body_sha256(BODY.as_bytes()), BODY_HASH);
    let url = format!("{URL}&bodySHA256={BODY_HASH}");
    assert_eq!(
        v().compute_signature(&url, &[] as &[(&str, &str)]),
        "a9nBmqA0ju/hNViExpshrM61xv4="
    );
    assert!(v().validate_body(&url, BODY.as_bytes(), "a9nBmqA0ju/hNViExpshrM61xv4="));
    let e = v()
        .check_body(
            &url,
            b"{}",
            "a9nBmqA0ju/hNViExpshrM61xv4=",
            SignatureAlgorithm::HmacSha1,
        )
        .unwrap_err();
    assert!(matches!(e, SignatureError::BodyHashMismatch { .. }), "{e}");
    let e = v()
        .check_body(
            URL,
            BODY.as_bytes(),
            "a9nBmqA0ju/hNViExpshrM61xv4=",
            SignatureAlgorithm::HmacSha1,
        )
        .unwrap_err();
    assert!(matches!(e, SignatureError::MissingBodyHash { .. }), "{e}");
}

#[test]
fn json_body_only_query_parameter() {
    let url = format!("https://mycompany.com/myapp.php?bodySHA256={BODY_HASH}");
    assert!(v().validate_body(&url, BODY.as_bytes(), "y77kIzt2vzLz71DgmJGsen2scGs="));
    assert!(!v().validate_body(&url, BODY.as_bytes(), "a9nBmqA0ju/hNViExpshrM61xv4="));
}

#[test]
fn userinfo_is_kept() {
    let url = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        v().compute_signature(url, &params()),
        "CukzLTc1tT5dXEDIHm/tKBanW10="
    );
    assert!(v().validate(url, &params(), "CukzLTc1tT5dXEDIHm/tKBanW10="));
}

#[test]
fn whatwg_reencoded_query() {
    let raw = format!("{URL}&Body=It's+amazing");
    let encoded = format!("{URL}&Body=It%27s+amazing");
    assert_eq!(
        v().compute_signature(&encoded, &params()),
        "TfZzewPq8wqrGlMfyAud8+/IvJ0="
    );
    assert!(v().validate(&raw, &params(), "TfZzewPq8wqrGlMfyAud8+/IvJ0="));
}

#[test]
fn shared_key_hmac_sha256() {
    let key = RequestValidator::new("shared-key-secret");
    let sig = key.compute_signature_with(URL, &params(), SignatureAlgorithm::HmacSha256);
    assert_eq!(sig.len(), 44, "base64 of 32 bytes");
    let alg = SignatureAlgorithm::from_settings_header(Some(
        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    ))
    .unwrap();
    assert!(key.check(URL, &params(), &sig, alg).is_ok());
    // Not valid as SHA-1, nor with another secret.
    assert!(key
        .check(URL, &params(), &sig, SignatureAlgorithm::HmacSha1)
        .is_err());
    assert!(v().check(URL, &params(), &sig, alg).is_err());
}

fn url_strategy() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https")],
        "[a-z][a-z0-9]{0,10}(\\.[a-z]{2,5}){1,2}",
        prop::option::of(1u16..65535),
        prop::collection::vec("[A-Za-z0-9_.~-]{1,8}", 0..4),
        prop::collection::vec(("[A-Za-z]{1,6}", "[A-Za-z0-9 '!*+%-]{0,8}"), 0..4),
    )
        .prop_map(|(scheme, host, port, segs, query)| {
            let mut u = format!("{scheme}://{host}");
            if let Some(p) = port {
                u.push_str(&format!(":{p}"));
            }
            u.push('/');
            u.push_str(&segs.join("/"));
            if !query.is_empty() {
                let q: Vec<String> = query
                    .into_iter()
                    .map(|(k, v)| format!("{k}={}", v.replace(' ', "+").replace('%', "%25")))
                    .collect();
                u.push('?');
                u.push_str(&q.join("&"));
            }
            u
        })
}

fn params_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[A-Za-z]{1,12}", "\\PC{0,16}"), 0..8)
}

/// Replaces the byte at `idx` (an ASCII position) with another ASCII letter or digit.
fn mutate_ascii(s: &str, idx: usize, pick: u8) -> Option<String> {
    let bytes = s.as_bytes();
    let b = *bytes.get(idx)?;
    if !b.is_ascii() {
        return None;
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut c = ALPHABET[pick as usize % ALPHABET.len()];
    if c == b {
        c = if b == b'a' { b'b' } else { b'a' };
    }
    let mut out = bytes.to_vec();
    out[idx] = c;
    String::from_utf8(out).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn accepts_own_signatures_and_rejects_one_byte_changes(
        url in url_strategy(),
        params in params_strategy(),
        token in "[A-Za-z0-9]{1,32}",
        idx in any::<prop::sample::Index>(),
        pick in any::<u8>(),
    ) {
        let val = RequestValidator::new(&token);
        let sig = val.compute_signature(&url, &params);
        prop_assert!(val.validate(&url, &params, &sig));

        // One byte of the signature changed (base64 alphabet).
        let si = idx.index(sig.len());
        if let Some(bad) = mutate_ascii(&sig, si, pick) {
            prop_assert!(!val.validate(&url, &params, &bad), "signature {} accepted", bad);
        }

        // One byte of the URL changed.
        let ui = idx.index(url.len());
        if let Some(bad_url) = mutate_ascii(&url, ui, pick) {
            prop_assert!(!val.validate(&bad_url, &params, &sig), "url {} accepted", bad_url);
        }

        // One byte of one parameter (name or value) changed.
        if !params.is_empty() {
            let pi = idx.index(params.len());
            let mut bad = params.clone();
            let (k, value) = &bad[pi];
            let changed = if pick % 2 == 0 || value.is_empty() {
                mutate_ascii(k, idx.index(k.len()), pick).map(|k2| (k2, value.clone()))
            } else {
                mutate_ascii(value, idx.index(value.len()), pick).map(|v2| (k.clone(), v2))
            };
            if let Some(p) = changed {
                bad[pi] = p;
                prop_assert!(!val.validate(&url, &bad, &sig), "params {:?} accepted", bad);
            }
        }
    }
}

/// The published JSON vector through `check_request`: body mode is chosen by
/// the signed URL alone, so the Content-Type (`form_body`) cannot skip the hash.
#[test]
fn check_request_uses_body_mode_whenever_the_url_has_body_sha256() {
    let url = format!("{URL}&bodySHA256={BODY_HASH}");
    let sig = "a9nBmqA0ju/hNViExpshrM61xv4=";
    for form_body in [false, true] {
        assert_eq!(
            v().check_request(
                &url,
                BODY.as_bytes(),
                form_body,
                sig,
                SignatureAlgorithm::HmacSha1
            ),
            Ok(())
        );
        for body in [&b""[..], b" ", b"{}", b"property=value"] {
            let e = v()
                .check_request(&url, body, form_body, sig, SignatureAlgorithm::HmacSha1)
                .unwrap_err();
            assert!(matches!(e, SignatureError::BodyHashMismatch { .. }), "{e}");
        }
    }
}

/// The axum extractor goes through the same rule: a signed body-hash URL with an
/// empty body is refused (403) whatever the method and Content-Type.
#[cfg(feature = "axum")]
#[tokio::test]
async fn extractor_refuses_an_empty_body_under_a_body_hash_url() {
    use axum::extract::FromRequest;
    use callbid_twilio::extract::{TwilioWebhook, WebhookRejection};
    use callbid_twilio::signature::WebhookVerifier;
    let base = "https://ivr.example.com";
    let verifier = WebhookVerifier::new(base, TOKEN).unwrap();
    let pq = format!("/hook?bodySHA256={BODY_HASH}");
    let sig = v().compute_signature(&format!("{base}{pq}"), &[] as &[(&str, &str)]);
    for (method, ct) in [
        ("POST", "application/json"),
        ("POST", "application/x-www-form-urlencoded"),
        ("POST", "text/plain"),
        ("GET", "application/json"),
    ] {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&pq)
            .header("content-type", ct)
            .header("x-twilio-signature", &sig)
            .body(axum::body::Body::empty())
            .unwrap();
        let r = TwilioWebhook::<serde_json::Value>::from_request(req, &verifier).await;
        assert!(
            matches!(
                r,
                Err(WebhookRejection::Forbidden(
                    SignatureError::BodyHashMismatch { .. }
                ))
            ),
            "{method} {ct}: {r:?}"
        );
    }
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(&pq)
        .header("content-type", "application/json")
        .header("x-twilio-signature", &sig)
        .body(axum::body::Body::from(BODY))
        .unwrap();
    let r = TwilioWebhook::<serde_json::Value>::from_request(req, &verifier).await;
    assert!(r.is_ok(), "{r:?}");
}
