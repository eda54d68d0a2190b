//! Every URL the REST client builds from a configured base URL that has a path
//! (`api_base_url("http://127.0.0.1:PORT/twilio/")`, with and without the
//! trailing slash): the first page, `next_page_uri` (server-relative, relative,
//! absolute), recordings, numbers, the Lookup base, `resolve_uri` for `uri` and
//! `subresource_uris`, and recording media. Twilio's URIs are relative to the API
//! root, so they must land under the base's path, and nothing may climb out of it.

use callbid_twilio::rest::*;
use futures::TryStreamExt;
use std::time::Duration;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request as WmRequest, ResponseTemplate};

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const CA: &str = "CA0123456789abcdef0123456789abcdef";
const RE: &str = "RE0123456789abcdef0123456789abcdef";
const PN: &str = "PN0123456789abcdef0123456789abcdef";

/// The base path prefixes tried: with and without a trailing slash, one and two segments.
const PREFIXES: [&str; 4] = ["/twilio", "/twilio/", "/gw/twilio", "/gw/twilio/"];

fn twilio_path(rest: &str) -> String {
    format!("/2010-04-01/Accounts/{AC}/{rest}")
}

fn client(base: &str) -> Client {
    Client::builder(AC)
        .auth_token("secret-token")
        .api_base_url(base)
        .lookups_base_url(format!("{base}lookups"))
        .retry(
            RetryConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .expect("client")
}

/// `server.uri()` plus `prefix`; `mount` is the prefix without a trailing slash.
fn base(server: &MockServer, prefix: &str) -> (String, String) {
    (
        format!("{}{prefix}", server.uri()),
        prefix.trim_end_matches('/').to_owned(),
    )
}

fn call(sid: &str) -> serde_json::Value {
    serde_json::json!({"sid": sid, "account_sid": AC, "status": "completed"})
}

/// Mounts page 1 at `{mount}{Calls.json}` answering with `next`, and page 2 at
/// `{mount}{Calls.json}?PageToken=PA1`; returns the sids listed.
async fn list_two_pages(prefix: &str, next: impl Fn(&str, &str) -> String) -> Vec<String> {
    let server = MockServer::start().await;
    let (base, mount) = base(&server, prefix);
    let calls = format!("{mount}{}", twilio_path("Calls.json"));
    let next_uri = next(&server.uri(), &mount);
    Mock::given(method("GET"))
        .and(path(calls.as_str()))
        .and(query_param("PageToken", "PA1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "calls": [call("CA0000000000000000000000000000000b")], "next_page_uri": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(calls.as_str()))
        .and(query_param("PageSize", "1"))
        .respond_with(move |_: &WmRequest| {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "calls": [call("CA0000000000000000000000000000000a")],
                "next_page_uri": next_uri}))
        })
        .expect(1)
        .mount(&server)
        .await;
    let mut filter = ListCalls::default();
    filter.page_size = Some(1);
    let got: Vec<Call> = client(&base)
        .calls()
        .list(&filter)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{prefix}: {e}"));
    server.verify().await;
    got.into_iter().filter_map(|c| c.sid).collect()
}

const BOTH: [&str; 2] = [
    "CA0000000000000000000000000000000a",
    "CA0000000000000000000000000000000b",
];

/// Regression: page 2 of a list under a base with a path went to
/// `/2010-04-01/…` (the path dropped by `Url::join`) and got 404.
#[tokio::test]
async fn server_relative_next_page_uri_stays_under_the_base_path() {
    for prefix in PREFIXES {
        let sids = list_two_pages(prefix, |_, _| {
            format!(
                "{}?PageSize=1&Page=1&PageToken=PA1",
                twilio_path("Calls.json")
            )
        })
        .await;
        assert_eq!(sids, BOTH, "{prefix}");
    }
}

#[tokio::test]
async fn path_relative_and_whitespace_wrapped_next_page_uris_stay_under_the_base_path() {
    for prefix in PREFIXES {
        // No leading slash: still relative to the API root.
        let sids = list_two_pages(prefix, |_, _| {
            format!(
                "{}?PageSize=1&Page=1&PageToken=PA1",
                twilio_path("Calls.json").trim_start_matches('/')
            )
        })
        .await;
        assert_eq!(sids, BOTH, "{prefix}");
        // Leading/trailing spaces and an embedded newline, as WHATWG cleans them.
        let sids = list_two_pages(prefix, |_, _| {
            format!("  /2010-04-01/Accounts/{AC}/Calls\n.json?PageSize=1&PageToken=PA1 ")
        })
        .await;
        assert_eq!(sids, BOTH, "{prefix}");
    }
}

#[tokio::test]
async fn absolute_next_page_url_under_the_base_path_is_followed_as_is() {
    for prefix in PREFIXES {
        let sids = list_two_pages(prefix, |origin, mount| {
            format!(
                "{origin}{mount}{}?PageSize=1&Page=1&PageToken=PA1",
                twilio_path("Calls.json")
            )
        })
        .await;
        assert_eq!(sids, BOTH, "{prefix}");
    }
}

/// Anything that would leave the base's origin or path is refused before a
/// request is made; the first page's items are still yielded.
#[tokio::test]
async fn next_page_uris_leaving_the_base_path_or_host_are_refused() {
    let foreign = MockServer::start().await;
    let foreign_port = url::Url::parse(&foreign.uri()).unwrap().port().unwrap();
    for prefix in PREFIXES {
        let server = MockServer::start().await;
        let (base, mount) = base(&server, prefix);
        let port = url::Url::parse(&server.uri()).unwrap().port().unwrap();
        let page = format!("{}?PageToken=PA1", twilio_path("Calls.json"));
        let cases = [
            // Absolute, same origin, but outside the base path.
            format!("{}{page}", server.uri()),
            // Absolute, a sibling path sharing the prefix's first letters.
            format!("{}{mount}x{page}", server.uri()),
            // Dot segments climbing out of the base path.
            format!("/../../..{page}"),
            format!("../../../admin{page}"),
            format!("/%2e%2e/%2E%2E/%2e%2e{page}"),
            format!("{}{mount}/../admin{page}", server.uri()),
            // Another host, port, scheme, or hidden behind user information.
            format!("{}{page}", foreign.uri()),
            format!("//127.0.0.1:{foreign_port}{page}"),
            format!("//evil.example{page}"),
            format!("\\\\evil.example{page}"),
            format!("/\\evil.example{page}"),
            format!(" //evil.example{page}"),
            format!("/\n/evil.example{page}"),
            format!("https://127.0.0.1:{port}{mount}{page}"),
            format!("http://user:pw@127.0.0.1:{port}{mount}{page}"),
        ];
        let calls = format!("{mount}{}", twilio_path("Calls.json"));
        for next in cases {
            server.reset().await;
            let next_for_mock = next.clone();
            Mock::given(method("GET"))
                .and(path(calls.as_str()))
                .respond_with(move |_: &WmRequest| {
                    ResponseTemplate::new(200).set_body_json(serde_json::json!({
                        "calls": [call(CA)], "next_page_uri": next_for_mock}))
                })
                .expect(1)
                .mount(&server)
                .await;
            let mut stream = client(&base).calls().list(&ListCalls::default());
            let first = stream.try_next().await.unwrap().expect("first page's item");
            assert_eq!(first.sid.as_deref(), Some(CA));
            match stream.try_next().await {
                Err(RestError::UntrustedNextPage { next_page_uri, .. }) => {
                    assert_eq!(next_page_uri, next, "{prefix}")
                }
                other => panic!("{prefix} {next:?}: expected UntrustedNextPage, got {other:?}"),
            }
            server.verify().await;
        }
    }
    assert!(
        foreign
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the foreign host was contacted"
    );
}

#[tokio::test]
async fn recordings_and_incoming_numbers_page_under_the_base_path() {
    for prefix in PREFIXES {
        let server = MockServer::start().await;
        let (base, mount) = base(&server, prefix);
        let recs = format!(
            "{mount}{}",
            twilio_path(&format!("Calls/{CA}/Recordings.json"))
        );
        let nums = format!("{mount}{}", twilio_path("IncomingPhoneNumbers.json"));
        for (p, key, item) in [
            (&recs, "recordings", serde_json::json!({"sid": RE})),
            (
                &nums,
                "incoming_phone_numbers",
                serde_json::json!({"sid": PN}),
            ),
        ] {
            let relative = p.strip_prefix(mount.as_str()).unwrap().to_owned();
            Mock::given(method("GET"))
                .and(path(p.as_str()))
                .and(query_param("Page", "1"))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    key: [item.clone()], "next_page_uri": null})))
                .expect(1)
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path(p.as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    key: [item], "next_page_uri": format!("{relative}?Page=1&PageToken=PA1")})))
                .expect(1)
                .mount(&server)
                .await;
        }
        let c = client(&base);
        let r: Vec<Recording> = c.calls().recordings(CA).try_collect().await.unwrap();
        assert_eq!(r.len(), 2, "{prefix}");
        let n: Vec<IncomingPhoneNumber> = c
            .incoming_phone_numbers()
            .list(&ListIncomingPhoneNumbers::default())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(n.len(), 2, "{prefix}");
        server.verify().await;
    }
}

#[tokio::test]
async fn available_numbers_and_lookups_use_the_base_path() {
    for prefix in PREFIXES {
        let server = MockServer::start().await;
        let (base, mount) = base(&server, prefix);
        Mock::given(method("GET"))
            .and(path(format!(
                "{mount}{}",
                twilio_path("AvailablePhoneNumbers/US/Local.json")
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "available_phone_numbers": [{"phone_number": "+15125550100"}]})))
            .expect(1)
            .mount(&server)
            .await;
        // The lookups base is `{base}lookups`: `/twilio/lookups` or `/twilio` + `lookups`.
        let lookups = url::Url::parse(&format!("{base}lookups")).unwrap();
        Mock::given(method("GET"))
            .and(path(format!(
                "{}/v2/PhoneNumbers/+15108675310",
                lookups.path()
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "phone_number": "+15108675310", "valid": true})))
            .expect(1)
            .mount(&server)
            .await;
        let c = client(&base);
        let found = c
            .available_phone_numbers("US")
            .local(&AvailableSearch::default())
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{prefix}");
        c.lookups().line_type("+15108675310").await.unwrap();
        server.verify().await;
    }
}

/// `uri` and `subresource_uris` values, and recording media, resolve under the
/// base path; the media URL is fetched there with the account's credentials.
#[tokio::test]
async fn resource_uris_and_recording_media_resolve_under_the_base_path() {
    for prefix in PREFIXES {
        let server = MockServer::start().await;
        let (base, mount) = base(&server, prefix);
        let c = client(&base);
        let recordings_uri = twilio_path(&format!("Calls/{CA}/Recordings.json"));
        let call_uri = twilio_path(&format!("Calls/{CA}.json"));
        for uri in [&recordings_uri, &call_uri] {
            let u = c.resolve_uri(uri).unwrap();
            assert_eq!(
                u.as_str(),
                format!("{}{mount}{uri}", server.uri()),
                "{prefix}"
            );
        }
        for bad in [
            format!("{}{}", server.uri(), recordings_uri),
            "//evil.example/x".to_owned(),
            "/../../x".to_owned(),
        ] {
            let e = c.resolve_uri(&bad).unwrap_err();
            assert!(
                matches!(&e, RestError::UntrustedUri { uri, .. } if *uri == bad),
                "{prefix} {bad}: {e:?}"
            );
            assert!(e.to_string().contains(&bad), "{e}");
        }
        let media = c.calls().recording_media_url(RE, "mp3").unwrap();
        let media_path = format!("{mount}{}", twilio_path(&format!("Recordings/{RE}.mp3")));
        assert_eq!(media.path(), media_path, "{prefix}");
        assert_eq!(
            c.calls().recording_media_url(RE, "wav").unwrap().path(),
            media_path.replace(".mp3", ".wav")
        );
        for (sid, format, field) in [
            (RE, "ogg", "format"),
            (RE, "mp3/../x", "format"),
            ("RE123", "mp3", "RecordingSid"),
            (CA, "mp3", "RecordingSid"),
        ] {
            let e = c
                .calls()
                .recording_media_url(sid, format)
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{e}");
        }
        Mock::given(method("GET"))
            .and(path(media_path.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"ID3".to_vec()))
            .expect(1)
            .mount(&server)
            .await;
        let got = reqwest::Client::new()
            .get(media)
            .basic_auth(AC, Some("secret-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{prefix}");
        server.verify().await;
    }
}

#[test]
fn base_urls_with_a_query_fragment_or_user_information_are_refused() {
    for (field, bad) in [
        ("api_base_url", "http://127.0.0.1:9/twilio?x=1"),
        ("api_base_url", "http://127.0.0.1:9/twilio#f"),
        ("api_base_url", "http://user:hunter2@127.0.0.1:9/twilio"),
        ("lookups_base_url", "http://127.0.0.1:9/l?x=1"),
    ] {
        let mut b = Client::builder(AC).auth_token("t");
        b = if field == "api_base_url" {
            b.api_base_url(bad)
        } else {
            b.lookups_base_url(bad)
        };
        let e = b.build().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
        assert!(!e.contains("hunter2"), "password echoed: {e}");
    }
}
