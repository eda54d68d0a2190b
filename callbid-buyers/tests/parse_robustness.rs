//! The fuzz target's logic on a seeded stream of mutated answers, so CI exercises the
//! parsers with hostile bodies without cargo-fuzz: no input may panic, and every bid
//! that comes out has a positive, sane price.

use callbid_buyers::json::MAX_PRICE;
use callbid_buyers::ping_post::{preset, preset_names, PingPost, PingPostSettings};
use callbid_buyers::{HttpAdapter, HttpResponse, Secret, ServiceDirect};
use callbid_core::{Bid, BuyerId, CallContext, CallId, Money, PingReply, ServiceType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: &[&str] = &[
    r#"{"data":{"available_buyer":1,"request_id":4242,"bid":30.10,"min_duration":90}}"#,
    r#"{"data":{"phone_number":"5125550199"}}"#,
    r#"{"bidId":"RGB-1","bidAmount":33.3,"expireInSeconds":30,"phoneNumber":"+18005550111","bidTerms":[{"callMinDuration":120}]}"#,
    r#"{"uuid":"u","status":"reserved","retreaver_payout":"22.50","retreaver_seconds":90,"inbound_number":"+18005550122","expires_at":"2099-01-01T00:00:00Z"}"#,
    r#"{"status":"success","try_all_buyers_ping_id":"TD","buyers":[{"buyer_id":77,"bid":12,"ping_id":"BP"}],"number":"+18005550133"}"#,
    r#"{"code":1000,"bidId":"CG","bidAmount":"19.99","phoneNumber":"+18005550144","sipAddress":"sip:a@b.example","expireInSeconds":60}"#,
];

const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1e400",
    "NaN",
    "\"NaN\"",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "99999999999999999999999999999999999",
    "\"sip:@\"",
    "\"+1\"",
    "\"\\u0000\"",
    "1.0000000000000000000000000001",
    "\"2001-01-01T00:00:00Z\"",
    "18446744073709551616",
];

fn mutate(rng: &mut ChaCha8Rng, s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b.truncate(i);
            }
            2 => {
                // Replace a value after a colon with a hostile token.
                let text = String::from_utf8_lossy(&b).into_owned();
                let colons: Vec<usize> = text.match_indices(':').map(|(i, _)| i).collect();
                if let Some(&c) = colons.get(rng.random_range(0..colons.len().max(1))) {
                    let end = text[c + 1..]
                        .find([',', '}', ']'])
                        .map(|e| c + 1 + e)
                        .unwrap_or(text.len());
                    let tok = TOKENS[rng.random_range(0..TOKENS.len())];
                    b = format!("{}{}{}", &text[..=c], tok, &text[end..]).into_bytes();
                }
            }
            3 => {
                let i = rng.random_range(0..=b.len());
                b.splice(i..i, b"{\"a\":[".iter().copied());
            }
            _ => b.extend_from_slice(b"}}]]\""),
        }
    }
    b
}

#[test]
fn mutated_answers_never_panic_and_bids_stay_sane() {
    let call = CallContext::new(
        CallId::new("CA1").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    );
    let buyer = BuyerId::new("fuzz").unwrap();
    let sd = ServiceDirect::new(Secret::new("k"));
    let mut adapters: Vec<PingPost> = Vec::new();
    for name in preset_names() {
        let spec = preset(name).unwrap();
        let mut s = PingPostSettings::default();
        s.base_url = Some("http://127.0.0.1:1".into());
        for p in &spec.required_params {
            s.params.insert(p.clone(), "x".into());
        }
        adapters.push(PingPost::new(&spec, s).unwrap());
    }
    let bid = Bid::new(buyer.clone(), Money::usd(1.into())).with_bid_id("1");
    let mut rng = ChaCha8Rng::seed_from_u64(20261121);
    let (mut bids, mut total) = (0, 0);
    for _ in 0..3000 {
        let seed = SEEDS[rng.random_range(0..SEEDS.len())];
        let body = if rng.random_bool(0.1) {
            seed.as_bytes().to_vec()
        } else {
            mutate(&mut rng, seed)
        };
        let status = [200u16, 200, 200, 204, 302, 400, 404, 500][rng.random_range(0..8)];
        let resp = HttpResponse::new(
            status,
            vec![("content-type".into(), "application/json".into())],
            body,
        );
        let mut replies = vec![sd.parse_ping(&buyer, &call, &resp)];
        let _ = sd.parse_accept(&call, &bid, &resp);
        for a in &adapters {
            replies.push(a.parse_ping(&buyer, &call, &resp));
            let _ = a.parse_accept(&call, &bid, &resp);
        }
        for r in replies {
            total += 1;
            if let Ok(PingReply::Bid(b)) = r {
                bids += 1;
                assert!(
                    b.price.is_positive() && b.price.amount <= MAX_PRICE,
                    "{b:?}"
                );
                if let Some(at) = b.expires_at {
                    assert!(
                        at > chrono::Utc::now() - chrono::Duration::seconds(5),
                        "{b:?}"
                    );
                }
            }
        }
    }
    assert!(bids > 100 && bids < total, "{bids} bids of {total}");
}
