//! Withheld callers end to end: Twilio's webhook body → `CallFields::caller_number`
//! → `CallContext::caller` → callbid-core's duplicate-caller rule and auction.
//!
//! Regression: a withheld caller arrives as `From=+266696687` (ANONYMOUS on a
//! keypad), which parses as E.164; taken as the caller, a second withheld caller
//! two hours later was denied by `DuplicateCallerRule::days(30)` as a duplicate of
//! the first. A withheld caller is "no caller ID": never a duplicate, and skipped
//! by buyers that need a caller ID.

use callbid_core::auction::{Auction, BuyerReply, Eligibility, FixedClock};
use callbid_core::inprocess::InProcessBuyer;
use callbid_core::rules::{DuplicateCallerRule, RoutingRule};
use callbid_core::state::MemorySeenCallers;
use callbid_core::*;
use callbid_twilio::webhook::{parse_form, CallFields, VoiceRequest, WithheldReason};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Every stand-in for "no caller ID" that Twilio sends in `From` / `Caller`
/// (form-encoded), with the reason it must be read as.
const STAND_INS: [(&str, WithheldReason); 13] = [
    ("%2B266696687", WithheldReason::Anonymous),
    ("%2B7378742833", WithheldReason::Restricted),
    ("%2B2562533", WithheldReason::Blocked),
    ("%2B8656696", WithheldReason::Unknown),
    ("%2B86282452253", WithheldReason::Unavailable),
    ("Anonymous", WithheldReason::Anonymous),
    ("ANONYMOUS", WithheldReason::Anonymous),
    ("Restricted", WithheldReason::Restricted),
    ("Unavailable", WithheldReason::Unavailable),
    ("Unknown", WithheldReason::Unknown),
    ("Private", WithheldReason::Private),
    (
        "sip%3Aanonymous%40anonymous.invalid",
        WithheldReason::Anonymous,
    ),
    ("", WithheldReason::Empty),
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0).unwrap()
}

fn webhook(call_sid: &str, from: &str, caller: bool) -> CallFields {
    let caller = if caller {
        format!("&Caller={from}")
    } else {
        String::new()
    };
    let body = format!(
        "CallSid={call_sid}&AccountSid=AC1&From={from}{caller}&To=%2B18005551212&CallStatus=ringing&Direction=inbound"
    );
    parse_form::<VoiceRequest>(body.as_bytes()).unwrap().call
}

/// The context the IVR builds: `caller` comes from `caller_number()`, never
/// from parsing `From`.
fn context(fields: &CallFields, at: DateTime<Utc>) -> CallContext {
    let mut ctx = CallContext::new(
        CallId::new(&fields.call_sid).unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        at,
    );
    ctx.caller = fields.caller_number();
    ctx
}

fn bid(buyer: &BuyerProfile) -> Bid {
    Bid::new(buyer.id.clone(), Money::usd(10.into()))
}

#[tokio::test]
async fn two_withheld_callers_two_hours_apart_are_both_allowed() {
    let buyer = BuyerProfile::new(BuyerId::new("plumber").unwrap());
    for (from, reason) in STAND_INS {
        for with_caller in [false, true] {
            let rule = DuplicateCallerRule::days(Arc::new(MemorySeenCallers::new()), 30);
            let first = webhook("CA1", from, with_caller);
            assert_eq!(first.caller_withheld(), Some(reason), "{from}");
            let first = context(&first, t0());
            assert_eq!(first.caller, None, "{from}: withheld must be no caller ID");
            assert!(rule.check(&first, &buyer, t0()).await.unwrap().is_allow());
            rule.confirm(&first, &buyer, &bid(&buyer), t0())
                .await
                .unwrap();
            let later = t0() + chrono::Duration::hours(2);
            let second = context(&webhook("CA2", from, with_caller), later);
            assert!(
                rule.check(&second, &buyer, later).await.unwrap().is_allow(),
                "{from}: second withheld caller denied as a duplicate"
            );
        }
    }
}

/// The control: a real caller calling again two hours later is a duplicate.
#[tokio::test]
async fn a_real_caller_two_hours_later_is_still_a_duplicate() {
    let buyer = BuyerProfile::new(BuyerId::new("plumber").unwrap());
    let rule = DuplicateCallerRule::days(Arc::new(MemorySeenCallers::new()), 30);
    let first = context(&webhook("CA1", "%2B15125550123", true), t0());
    assert_eq!(
        first.caller.as_ref().map(PhoneNumber::as_str),
        Some("+15125550123")
    );
    rule.confirm(&first, &buyer, &bid(&buyer), t0())
        .await
        .unwrap();
    let later = t0() + chrono::Duration::hours(2);
    let second = context(&webhook("CA2", "%2B15125550123", true), later);
    assert!(!rule.check(&second, &buyer, later).await.unwrap().is_allow());
}

/// Through the whole auction: a buyer that needs caller ID is skipped for a
/// withheld caller, and the other buyer wins both withheld calls two hours apart
/// despite `DuplicateCallerRule::days(30)`.
#[tokio::test]
async fn the_auction_skips_caller_id_buyers_and_never_dedupes_withheld_callers() {
    let seen = Arc::new(MemorySeenCallers::new());
    let auction = |at: DateTime<Utc>| {
        let needs_id = InProcessBuyer::new(
            BuyerId::new("needs-id").unwrap(),
            Money::usd(50.into()),
            Destination::parse("+15125550101").unwrap(),
        )
        .with_capabilities(Capabilities::default().with_needs_caller_id(true));
        let any = InProcessBuyer::new(
            BuyerId::new("any").unwrap(),
            Money::usd(20.into()),
            Destination::parse("+15125550102").unwrap(),
        );
        Auction::builder()
            .buyer(BuyerEntry::new(Arc::new(needs_id)))
            .buyer(BuyerEntry::new(Arc::new(any)))
            .rule(Arc::new(DuplicateCallerRule::days(seen.clone(), 30)))
            .clock(Arc::new(FixedClock(at)))
            .deadline(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    for (i, at) in [t0(), t0() + chrono::Duration::hours(2)]
        .into_iter()
        .enumerate()
    {
        let fields = webhook(&format!("CA{i}"), "%2B266696687", true);
        let ctx = context(&fields, at);
        let out = auction(at).run(&ctx).await;
        let winner = out.winner().unwrap_or_else(|| panic!("call {i}: {out:?}"));
        assert_eq!(winner.buyer.as_str(), "any", "call {i}");
        let needs_id = &out.buyers[0];
        assert!(
            matches!(&needs_id.eligibility, Eligibility::Excluded { rule, .. } if rule == "capabilities"),
            "call {i}: {:?}",
            needs_id.eligibility
        );
        assert!(matches!(needs_id.reply, BuyerReply::NotPinged));
    }
    // A real caller reaches the caller-ID buyer.
    let ctx = context(&webhook("CA9", "%2B15125550123", true), t0());
    let out = auction(t0()).run(&ctx).await;
    assert_eq!(out.winner().map(|w| w.buyer.as_str()), Some("needs-id"));
}

/// What the fault looked like: parsing `From` directly makes every withheld
/// caller the same "number", so the second is denied as a duplicate.
#[tokio::test]
async fn parsing_from_directly_turns_withheld_callers_into_duplicates() {
    let buyer = BuyerProfile::new(BuyerId::new("plumber").unwrap());
    let rule = DuplicateCallerRule::days(Arc::new(MemorySeenCallers::new()), 30);
    let naive = |fields: &CallFields, at| {
        let mut ctx = context(fields, at);
        ctx.caller = fields
            .from
            .as_deref()
            .and_then(|f| PhoneNumber::parse(f).ok());
        ctx
    };
    let first = naive(&webhook("CA1", "%2B266696687", true), t0());
    assert!(first.caller.is_some(), "the stand-in parses as E.164");
    rule.confirm(&first, &buyer, &bid(&buyer), t0())
        .await
        .unwrap();
    let later = t0() + chrono::Duration::hours(2);
    let second = naive(&webhook("CA2", "%2B266696687", true), later);
    assert!(!rule.check(&second, &buyer, later).await.unwrap().is_allow());
}
