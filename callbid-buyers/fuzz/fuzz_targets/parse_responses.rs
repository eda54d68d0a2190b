//! Fuzzes the response parsers: Service Direct's ping and accept parsers and the generic
//! ping-post mapping of every preset, with arbitrary status, content type and body.
//! Run from `callbid-buyers/`: `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_responses`.
#![no_main]

use callbid_buyers::ping_post::{preset, preset_names, PingPost, PingPostSettings};
use callbid_buyers::{HttpAdapter, HttpResponse, Secret, ServiceDirect};
use callbid_core::{Bid, BuyerId, CallContext, CallId, Money, ServiceType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = [200u16, 201, 204, 302, 400, 404, 500][data[0] as usize % 7];
    let content_type = ["application/json", "text/html", "application/vnd.x+json"][data[1] as usize % 3];
    let body = data[2..].to_vec();
    let resp = HttpResponse::new(status, vec![("content-type".into(), content_type.into())], body);
    let call = CallContext::new(
        CallId::new("CA1").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    );
    let buyer = BuyerId::new("fuzz").unwrap();
    let sd = ServiceDirect::new(Secret::new("k"));
    let _ = sd.parse_ping(&buyer, &call, &resp);
    let bid = Bid::new(buyer.clone(), Money::usd(1.into())).with_bid_id("1");
    let _ = sd.parse_accept(&call, &bid, &resp);
    for name in preset_names() {
        let spec = preset(name).unwrap();
        let mut settings = PingPostSettings::default();
        settings.base_url = Some("http://127.0.0.1:1".into());
        for p in &spec.required_params {
            settings.params.insert(p.clone(), "x".into());
        }
        let Ok(pp) = PingPost::new(&spec, settings) else { continue };
        let _ = pp.parse_ping(&buyer, &call, &resp);
        let _ = pp.parse_accept(&call, &bid, &resp);
    }
});
