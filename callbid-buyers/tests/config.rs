//! `buyers.toml` loading: the shipped example loads, rules come out right, and every
//! invalid field is reported with the buyer, the field and the value.

use std::sync::Arc;

use callbid_buyers::config::{BuyersLoader, ConfigError};
use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
use callbid_core::{BuyerEntry, CallContext, CallId, ServiceType};
use chrono::TimeZone;

fn loader() -> BuyersLoader {
    BuyersLoader::new(
        Arc::new(MemoryCapStore::new()),
        Arc::new(MemorySeenCallers::new()),
    )
    .with_env([
        ("SD_API_KEY", "sd-secret"),
        ("RINGBA_KEY", "rb-secret"),
        ("RETREAVER_KEY", "rt-secret"),
        ("TD_KEY", "td-secret"),
        ("CALLGRID_KEY", "cg-secret"),
        ("PARTNER_USER", "alice"),
        ("PARTNER_PASS", "pw-secret"),
    ])
}

fn load(text: &str) -> Result<Vec<BuyerEntry>, ConfigError> {
    loader().load_str(text)
}

const EXAMPLE: &str = include_str!("../examples/buyers.toml");

#[test]
fn example_file_loads() {
    let entries = load(EXAMPLE).unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.buyer.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "service-direct",
            "ringba-hvac",
            "retreaver-roofing",
            "trackdrive-plumbing",
            "callgrid-pest",
            "acme-partner"
        ]
    );
    let sd = &entries[0];
    assert_eq!(sd.profile.time_zone, chrono_tz::America::Chicago);
    assert_eq!(sd.timeout, Some(std::time::Duration::from_millis(1200)));
    let names: Vec<&str> = sd.rules.iter().map(|r| r.name()).collect();
    assert!(names.contains(&"hours"), "{names:?}");
    assert!(names.contains(&"service"), "{names:?}");
    assert!(names.contains(&"bid_bounds"), "{names:?}");
    assert!(names.contains(&"duplicate_caller"), "{names:?}");
    assert!(names.iter().any(|n| n.contains("cap")), "{names:?}");
    assert!(sd.buyer.capabilities().has_accept);
    assert!(entries[3].buyer.capabilities().has_accept);
    assert!(!entries[1].buyer.capabilities().has_accept);
    // Debug output never shows a credential.
    let dbg = format!("{entries:?}");
    for secret in ["sd-secret", "rb-secret", "rt-secret", "pw-secret"] {
        assert!(!dbg.contains(secret), "Debug leaks {secret}");
    }
}

#[tokio::test]
async fn rules_from_the_file_apply() {
    let entries = load(
        r#"
        [[buyer]]
        id = "tx-plumbing"
        adapter = "ping_post"
        services = ["plumbing"]
        geo = { allow_states = ["TX"], deny_zips = ["78702"] }
        ping_post = { preset = "ringba", params = { rtb_id = "x" } }
        "#,
    )
    .unwrap();
    let e = &entries[0];
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 21, 15, 0, 0)
        .unwrap();
    let call = |zip: &str, svc: &str| {
        CallContext::new(
            CallId::new("CA1").unwrap(),
            zip.parse().unwrap(),
            ServiceType::new(svc).unwrap(),
            at,
        )
    };
    let allowed = |c: CallContext| {
        let rules = e.rules.clone();
        let profile = e.profile.clone();
        async move {
            for r in &rules {
                if !r.check(&c, &profile, at).await.unwrap().is_allow() {
                    return false;
                }
            }
            true
        }
    };
    assert!(allowed(call("78701", "plumbing")).await);
    assert!(!allowed(call("78702", "plumbing")).await);
    assert!(!allowed(call("10001", "plumbing")).await);
    assert!(!allowed(call("78701", "roofing")).await);
}

#[test]
fn disabled_buyers_are_skipped_and_ids_unique() {
    let e = load(
        r#"
        [[buyer]]
        id = "a"
        adapter = "ping_post"
        enabled = false
        ping_post = { preset = "ringba", params = { rtb_id = "x" } }
        "#,
    )
    .unwrap();
    assert!(e.is_empty());
    let err = load(
        r#"
        [[buyer]]
        id = "a"
        adapter = "ping_post"
        ping_post = { preset = "ringba", params = { rtb_id = "x" } }
        [[buyer]]
        id = "a"
        adapter = "ping_post"
        ping_post = { preset = "ringba", params = { rtb_id = "y" } }
        "#,
    )
    .unwrap_err();
    assert_invalid(&err, "a", "id", "a");
}

fn assert_invalid(err: &ConfigError, buyer: &str, field: &str, value_contains: &str) {
    match err {
        ConfigError::Invalid {
            buyer: b,
            field: f,
            value: v,
            reason,
        } => {
            assert_eq!(b, buyer, "buyer in {err}");
            assert_eq!(f, field, "field in {err}");
            assert!(
                v.contains(value_contains),
                "value {v:?} should contain {value_contains:?} ({reason})"
            );
            let text = err.to_string();
            assert!(text.contains(buyer) && text.contains(field), "{text}");
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

/// (extra lines for a valid Ringba buyer `b`, expected field, value fragment)
const RINGBA_CASES: &[(&str, &str, &str)] = &[
    ("colour = \"red\"", "colour", "red"),
    ("priority = -1", "priority", "-1"),
    ("priority = \"high\"", "priority", "high"),
    ("weight = 0", "weight", "0"),
    ("time_zone = \"Mars/Base\"", "time_zone", "Mars/Base"),
    ("currency = \"DOLLARS\"", "currency", "DOLLARS"),
    ("timeout_ms = 0", "timeout_ms", "0"),
    ("timeout_ms = 600000", "timeout_ms", "600000"),
    ("min_duration_secs = 100000", "min_duration_secs", "100000"),
    ("services = []", "services", "[]"),
    ("services = [\"plumbing!\"]", "services[0]", "plumbing!"),
    ("floor = \"1e3\"", "floor", "1e3"),
    ("floor = \"-5\"", "floor", "-5"),
    ("floor = \"NaN\"", "floor", "NaN"),
    ("floor = 10", "floor", "10"),
    ("ceiling = \"abc\"", "ceiling", "abc"),
    ("floor = \"50\"\nceiling = \"10\"", "ceiling", "10"),
    ("duplicate_caller_days = 0", "duplicate_caller_days", "0"),
    ("hours = {}", "hours", "{}"),
    ("hours = { monday = [\"9-5\"] }", "hours.monday[0]", "9-5"),
    (
        "hours = { weekdays = [\"08:00-25:00\"] }",
        "hours.weekdays[0]",
        "25:00",
    ),
    (
        "hours = { mondays = [\"08:00-17:00\"] }",
        "hours.mondays",
        "08:00",
    ),
    (
        "hours = { time_zone = \"Nowhere\", monday = [\"08:00-17:00\"] }",
        "hours.time_zone",
        "Nowhere",
    ),
    ("geo = {}", "geo", "{}"),
    (
        "geo = { allow_zips = [\"7870\"] }",
        "geo.allow_zips[0]",
        "7870",
    ),
    (
        "geo = { allow_states = [\"XX\"] }",
        "geo.allow_states[0]",
        "XX",
    ),
    (
        "geo = { deny_states = [\"TX\", \"Texas\"] }",
        "geo.deny_states[1]",
        "Texas",
    ),
    (
        "geo = { allow_area_codes = [123] }",
        "geo.allow_area_codes[0]",
        "123",
    ),
    (
        "geo = { allow_area_codes = [70000] }",
        "geo.allow_area_codes[0]",
        "70000",
    ),
    (
        "geo = { allow_countries = [\"US\"] }",
        "geo.allow_countries",
        "US",
    ),
    ("caps = {}", "caps", "{}"),
    ("caps = { daily = 0 }", "caps.daily", "0"),
    ("caps = { daily = -3 }", "caps.daily", "-3"),
    ("caps = { dialy = 3 }", "caps.dialy", "3"),
    (
        "caps = { daily_spend = \"lots\" }",
        "caps.daily_spend",
        "lots",
    ),
    (
        "caps = { monthly_spend = \"0\" }",
        "caps.monthly_spend",
        "0",
    ),
    ("caps = { concurrency = \"2\" }", "caps.concurrency", "2"),
    ("rate_limit = { pings = 0 }", "rate_limit.pings", "0"),
    (
        "rate_limit = { pings = 10, per_secs = 0 }",
        "rate_limit.per_secs",
        "0",
    ),
    (
        "rate_limit = { per_secs = 60 }",
        "rate_limit.pings",
        "(missing)",
    ),
    ("retry = { max_retries = 9 }", "retry.max_retries", "9"),
    (
        "retry = { max_retries = 1, backoff_ms = 0 }",
        "retry.backoff_ms",
        "0",
    ),
    (
        "service_direct = { api_key_env = \"SD_API_KEY\" }",
        "service_direct",
        "(table)",
    ),
];

#[test]
fn invalid_buyer_fields_name_buyer_field_and_value() {
    for (extra, field, value) in RINGBA_CASES {
        let text = format!(
            "[[buyer]]\nid = \"b\"\nadapter = \"ping_post\"\nping_post = {{ preset = \"ringba\", params = {{ rtb_id = \"x\" }} }}\n{extra}\n"
        );
        let err = load(&text).expect_err(extra);
        assert_invalid(&err, "b", field, value);
    }
}

/// (the `ping_post` / `service_direct` / `adapter` lines, field, value fragment)
const ADAPTER_CASES: &[(&str, &str, &str)] = &[
    ("adapter = \"soap\"", "adapter", "soap"),
    ("adapter = \"ping_post\"", "ping_post", "(missing)"),
    ("adapter = \"service_direct\"", "service_direct", "(missing)"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"NOPE\" }", "service_direct.api_key_env", "NOPE"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"\" }", "service_direct.api_key_env", ""),
    ("adapter = \"service_direct\"\ncurrency = \"EUR\"\nservice_direct = { api_key_env = \"SD_API_KEY\" }", "currency", "EUR"),
    ("adapter = \"service_direct\"\nservice_direct = { key = \"inline-secret\" }", "service_direct.key", "inline-secret"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", base_url = \"ftp://x\" }", "service_direct.base_url", "ftp://x"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", base_url = \"not a url\" }", "service_direct.base_url", "not a url"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", categories = { plumbing = 0 } }", "service_direct.categories.plumbing", "0"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", categories = { \"a b!\" = 3 } }", "service_direct.categories.a b!", "a b!"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", categories = { plumbing = \"20\" } }", "service_direct.categories.plumbing", "20"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringbaa\" }", "ping_post.preset", "ringbaa"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\" }", "ping_post.params.rtb_id", ""),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"\" } }", "ping_post.params.rtb_id", ""),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, base_url = \"nope\" }", "ping_post.base_url", "nope"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"trackdrive\", params = { vanity = \"v\", traffic_source_id = \"1\" } }", "ping_post.base_url", ""),
    ("adapter = \"ping_post\"\nping_post = { preset = \"retreaver\" }", "ping_post.api_key_env", "(missing)"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"retreaver\", api_key_env = \"MISSING_VAR\" }", "ping_post.api_key_env", "MISSING_VAR"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, api_key_env = \"RINGBA_KEY\" }", "ping_post.api_key_env", "RINGBA_KEY"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, auth = { type = \"oauth\" } }", "ping_post.auth.type", "oauth"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, auth = { type = \"header\", name = \"bad header\", value_env = \"RINGBA_KEY\" } }", "ping_post.auth.name", "bad header"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, auth = { type = \"basic\", password_env = \"PARTNER_PASS\" } }", "ping_post.auth.username", "(missing)"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, auth = { type = \"basic\", username = \"a:b\", password_env = \"PARTNER_PASS\" } }", "ping_post.auth.username", "a:b"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, headers = { \"X Bad\" = \"1\" } }", "ping_post.headers", "X Bad"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, headers = { \"X-Ok\" = \"{nope}\" } }", "ping_post.headers.X-Ok", "{nope}"),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, ping = { request = { url = \"x\" }, response = { price = \"/p\" } } }", "ping_post.preset", "ringba"),
    ("adapter = \"ping_post\"\nping_post = { base_url = \"http://127.0.0.1:1\" }", "ping_post.ping", "(missing)"),
    // base_url is checked even when no template uses {base} (yet).
    ("adapter = \"ping_post\"\nping_post = { base_url = \"ftp://files.example\", ping = { request = { url = \"http://127.0.0.1:9/p\" }, response = { price = \"/p\", destination = [\"/d\"] } } }", "ping_post.base_url", "ftp://files.example"),
    ("adapter = \"ping_post\"\nping_post = { base_url = \"not a url\", ping = { request = { url = \"http://127.0.0.1:9/p\" }, response = { price = \"/p\", destination = [\"/d\"] } } }", "ping_post.base_url", "not a url"),
    ("adapter = \"ping_post\"\nping_post = { base_url = \"\", ping = { request = { url = \"http://127.0.0.1:9/p\" }, response = { price = \"/p\", destination = [\"/d\"] } } }", "ping_post.base_url", ""),
    ("adapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" }, base_url = \"https://rtb.example/?key=1\" }", "ping_post.base_url", "?key=1"),
    ("adapter = \"service_direct\"\nservice_direct = { api_key_env = \"SD_API_KEY\", base_url = \"https://api.example/partners/?x=1\" }", "service_direct.base_url", "?x=1"),
];

#[test]
fn invalid_adapter_fields_name_buyer_field_and_value() {
    for (lines, field, value) in ADAPTER_CASES {
        let text = format!("[[buyer]]\nid = \"net-1\"\n{lines}\n");
        let err = load(&text).expect_err(lines);
        assert_invalid(&err, "net-1", field, value);
    }
}

fn inline(ping: &str, extra: &str) -> String {
    format!(
        "[[buyer]]\nid = \"inl\"\nadapter = \"ping_post\"\n[buyer.ping_post]\nbase_url = \"http://127.0.0.1:9\"\n{extra}\n[buyer.ping_post.ping]\n{ping}\n"
    )
}

/// Inline mappings: (ping table body, extra ping_post lines, field, value fragment)
const INLINE_CASES: &[(&str, &str, &str, &str)] = &[
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"price\", destination = [\"/d\"] }", "", "ping_post.ping.response.price", "price"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/price\" }", "", "ping_post.ping.response.destination", "[]"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/price\", destination = [\"d\"] }", "", "ping_post.ping.response.destination[0]", "d"),
    ("request = { url = \"{base}/{calller}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{calller}"),
    ("request = { url = \"{base}/{bid_id}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{bid_id}"),
    ("request = { url = \"{base}/{param.offer}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.params.offer", "{param.offer}"),
    ("request = { url = \"{base}/p\", json = { a = \"{zip\" } }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.json", "{zip"),
    ("request = { url = \"{base}/p\", json = { a = 1 }, form = { b = \"2\" } }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request", "json + form"),
    ("request = { method = \"GET\", url = \"{base}/p\", form = { b = \"2\" } }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.method", "GET"),
    ("request = { method = \"DELETE\", url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.method", "DELETE"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"], accepted = [{ pointer = \"/ok\" }] }", "", "ping_post.ping.response.accepted[0]", "/ok"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"], accepted = [{ pointer = \"/ok\", equals = 1, exists = true }] }", "", "ping_post.ping.response.accepted[0]", "/ok"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"], no_bid_statuses = [999] }", "", "ping_post.ping.response.no_bid_statuses", "999"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"], expires_in = \"seconds\" }", "", "ping_post.ping.response.expires_in", "seconds"),
    ("request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", destination = [\"/d\"], pricee = \"/x\" }", "", "ping_post.ping.response.pricee", "/x"),
    ("request = { url = \"{base}/p\", query = { k = \"{attr.}\" } }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.query.k", "{attr.}"),
    // Placeholders that may have no value for a call cannot be in a URL (they would
    // render as an empty path segment); the query table leaves them out instead.
    ("request = { url = \"{base}/c/{campaign}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{base}/c/{campaign}"),
    ("request = { url = \"{base}/p?sub={source}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{source}"),
    ("request = { url = \"{base}/p/{attr.tier}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{attr.tier}"),
    ("request = { url = \"{base}/p/{caller}\" }\nresponse = { price = \"/p\", destination = [\"/d\"] }", "", "ping_post.ping.request.url", "{caller}"),
];

#[test]
fn invalid_inline_mappings_name_the_field() {
    for (ping, extra, field, value) in INLINE_CASES {
        let err = load(&inline(ping, extra)).expect_err(ping);
        assert_invalid(&err, "inl", field, value);
    }
    // An accept step that does not say where the destination is.
    let text = inline(
        "request = { url = \"{base}/p\" }\nresponse = { price = \"/p\" }",
        "accept = { request = { url = \"{base}/a/{bid_id}\" }, response = { destination = [] } }",
    );
    assert_invalid(
        &load(&text).unwrap_err(),
        "inl",
        "ping_post.accept.response.destination",
        "[]",
    );
    // An accept URL may use {bid_id} only when the ping answer names one.
    let text = inline(
        "request = { url = \"{base}/p\" }\nresponse = { price = \"/p\" }",
        "accept = { request = { url = \"{base}/a/{bid_id}\" }, response = { destination = [\"/d\"] } }",
    );
    assert_invalid(
        &load(&text).unwrap_err(),
        "inl",
        "ping_post.accept.request.url",
        "{bid_id}",
    );
    // A {reply.NAME} that `keep` does not keep could never have a value.
    let text = inline(
        "request = { url = \"{base}/p\" }\nresponse = { price = \"/p\", bid_id = \"/id\", keep = { t = \"/t\" } }",
        "accept = { request = { url = \"{base}/a/{bid_id}\", json = { x = \"{reply.x}\" } }, response = { destination = [\"/d\"] } }",
    );
    assert_invalid(
        &load(&text).unwrap_err(),
        "inl",
        "ping_post.accept.request",
        "{reply.x}",
    );
    // A URL with only placeholders that always have a value loads: {caller} with
    // needs_caller_id, {bid_id} with a bid_id pointer, a kept {reply.NAME}.
    let ok = inline(
        "request = { url = \"{base}/p/{zip}/{caller}\" }\nresponse = { price = \"/p\", bid_id = \"/id\", keep = { t = \"/t\" } }",
        "capabilities = { needs_caller_id = true }\naccept = { request = { url = \"{base}/a/{bid_id}/{reply.t}\" }, response = { destination = [\"/d\"] } }",
    );
    load(&ok).unwrap();
    // A valid inline mapping with an accept step loads. (Its `keep` is needed since
    // `{reply.NAME}` must name a kept value.)
    let ok = inline(
        "request = { url = \"{base}/p\", form = { z = \"{zip}\" } }\nresponse = { price = \"/p\", bid_id = \"/id\", keep = { t = \"/t\" } }",
        "accept = { request = { url = \"{base}/a/{bid_id}\", json = { t = \"{reply.t}\" } }, response = { destination = [\"/d\"] } }",
    );
    let e = load(&ok).unwrap();
    assert!(e[0].buyer.capabilities().has_accept);
}

#[test]
fn buyers_without_id_and_sections_are_named() {
    let err = load("[[buyer]]\nadapter = \"ping_post\"\n").unwrap_err();
    assert_invalid(&err, "#1", "id", "(missing)");
    let err = load("[[buyer]]\nid = \"b b\"\nadapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" } }\n").unwrap_err();
    assert_invalid(&err, "b b", "id", "b b");
    let err = load("[http]\nmax_body_bytes = \"big\"\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Section { section, field, value, .. } if section == "http" && field == "http.max_body_bytes" && value.contains("big")),
        "{err:?}"
    );
    let err = load("[defaults]\ntimezone = \"UTC\"\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Section { field, .. } if field == "defaults.timezone"),
        "{err:?}"
    );
    let err = load("[defaults]\ntime_zone = \"Nowhere/City\"\n[[buyer]]\nid = \"d\"\nadapter = \"ping_post\"\nping_post = { preset = \"ringba\", params = { rtb_id = \"x\" } }\n").unwrap_err();
    assert_invalid(&err, "d", "time_zone", "Nowhere/City");
    assert!(matches!(
        load("buyer = 3"),
        Err(ConfigError::Section { .. })
    ));
    assert!(matches!(load("[[buyer]"), Err(ConfigError::Syntax(_))));
    assert!(matches!(
        loader().load_file("/nonexistent/buyers.toml"),
        Err(ConfigError::Io { .. })
    ));
}
