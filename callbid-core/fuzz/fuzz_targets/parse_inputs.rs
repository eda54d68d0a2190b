//! Every parser of untrusted input in callbid-core: phone numbers (E.164 and NANP),
//! SIP URIs, destinations, ZIPs, service types, ids, currencies, amounts, hours, and the
//! JSON forms of the same types. None may panic; anything accepted must round-trip.
#![no_main]

use callbid_core::rules::TimeRange;
use callbid_core::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(p) = PhoneNumber::parse(s) {
        assert_eq!(PhoneNumber::parse(p.as_str()).as_ref(), Ok(&p));
        let _ = p.area_info();
    }
    if let Ok(p) = PhoneNumber::from_nanp(s) {
        assert!(p.as_str().starts_with('+'));
    }
    if let Ok(u) = SipUri::parse(s) {
        assert_eq!(SipUri::parse(u.as_str()).as_ref(), Ok(&u));
        let _ = u.host();
    }
    let _ = Destination::parse(s);
    if let Ok(z) = Zip::parse(s) {
        assert_eq!(Zip::parse(z.as_str()).map(|x| x.as_str().to_string()), Ok(z.as_str().to_string()));
        let _ = z.state();
    }
    if let Ok(t) = ServiceType::new(s) {
        assert_eq!(ServiceType::new(t.as_str()).as_ref(), Ok(&t));
    }
    let _ = BuyerId::new(s);
    let _ = Currency::parse(s);
    let _ = Money::parse_amount("price", s, Currency::USD);
    let _ = TimeRange::parse(s);
    let _ = serde_json::from_str::<CallContext>(s);
    let _ = serde_json::from_str::<Destination>(s);
});
