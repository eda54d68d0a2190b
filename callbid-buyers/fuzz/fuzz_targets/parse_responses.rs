//! Fuzzes the response side of every buyer: `Content-Encoding` decoding within the body
//! cap, then Service Direct's ping and accept parsers and the generic ping-post mapping
//! of every preset, with arbitrary status, content type, coding and body.
//!
//! Input: byte 0 picks the status, byte 1 the content type, byte 2 the
//! `Content-Encoding`, the rest is the body (`fuzz/seed_corpora.py` writes seeds in this
//! form from the JSON fixtures).
//!
//! The buyers (four preset TOML files parsed and compiled, Service Direct) are built once
//! in a `LazyLock`, not per input: building them dominated the run time (≈325 exec/s).
//!
//! Run from `callbid-buyers/`: `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_responses`.
#![no_main]

use std::sync::LazyLock;

use callbid_buyers::encoding;
use callbid_buyers::ping_post::{preset, preset_names, PingPost, PingPostSettings};
use callbid_buyers::{HttpAdapter, HttpResponse, Secret, ServiceDirect};
use callbid_core::{Bid, BuyerId, CallContext, CallId, Money, ServiceType};
use libfuzzer_sys::fuzz_target;

/// The statuses the selector byte maps to (the ones adapters treat differently).
pub const STATUSES: [u16; 8] = [200, 201, 204, 302, 400, 404, 429, 500];
/// The content types the selector byte maps to.
pub const CONTENT_TYPES: [&str; 3] = ["application/json", "text/html", "application/vnd.x+json"];
/// The `Content-Encoding` values the selector byte maps to (`""`: none).
pub const CODINGS: [&str; 7] = ["", "gzip", "deflate", "br", "gzip, br", "identity", "zstd"];

struct Buyers {
    id: BuyerId,
    call: CallContext,
    bid: Bid,
    sd: ServiceDirect,
    presets: Vec<PingPost>,
}

static BUYERS: LazyLock<Buyers> = LazyLock::new(|| {
    let id = BuyerId::new("fuzz").unwrap();
    let call = CallContext::new(
        CallId::new("CA1").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    );
    let bid = Bid::new(id.clone(), Money::usd(1.into())).with_bid_id("1");
    let presets = preset_names()
        .filter_map(|name| {
            let spec = preset(name).unwrap();
            let mut settings = PingPostSettings::default();
            settings.base_url = Some("http://127.0.0.1:1".into());
            for p in &spec.required_params {
                settings.params.insert(p.clone(), "x".into());
            }
            PingPost::new(&spec, settings).ok()
        })
        .collect();
    Buyers {
        id,
        call,
        bid,
        sd: ServiceDirect::new(Secret::new("k")),
        presets,
    }
});

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let b = &*BUYERS;
    let status = STATUSES[data[0] as usize % STATUSES.len()];
    let content_type = CONTENT_TYPES[data[1] as usize % CONTENT_TYPES.len()];
    let coding = CODINGS[data[2] as usize % CODINGS.len()];
    let mut body = data[3..].to_vec();
    if !coding.is_empty() {
        let codings = encoding::codings([coding]);
        match encoding::decode(&codings, body, 64 * 1024) {
            Ok(decoded) => {
                assert!(decoded.len() <= 64 * 1024);
                body = decoded;
            }
            Err(e) => {
                // Every refusal names the coding it concerns.
                let text = e.to_string();
                assert!(codings.iter().any(|c| text.contains(c.as_str())), "{text}");
                return;
            }
        }
    }
    let resp = HttpResponse::new(
        status,
        vec![("content-type".into(), content_type.into())],
        body,
    );
    let _ = b.sd.parse_ping(&b.id, &b.call, &resp);
    let _ = b.sd.parse_accept(&b.call, &b.bid, &resp);
    let _ = b.sd.effective_status(&resp);
    for pp in &b.presets {
        let _ = pp.parse_ping(&b.id, &b.call, &resp);
        let _ = pp.parse_accept(&b.call, &b.bid, &resp);
    }
});
