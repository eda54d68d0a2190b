//! The IVR configuration the agent-pool and number-pool end-to-end tests share.
#![allow(dead_code)]

use callbid::core::billing::PayoutRule;
use callbid::core::PhoneNumber;
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::IvrConfig;
use rust_decimal::Decimal;

/// An IVR at `base` with `menu`, the fallback chain `fallback` (with `in_house` as the
/// in-house number), a 70% payout, no recording and a short greeting.
pub fn ivr_config(base: &str, menu: &str, fallback: &str, in_house: Option<&str>) -> IvrConfig {
    let number = in_house.map(|n| PhoneNumber::parse(n).expect("in-house number"));
    IvrConfig {
        public_url: base.to_owned(),
        menu: Menu::parse(menu).expect("menu"),
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            fallback,
            number.as_ref(),
            DEFAULT_MESSAGE,
            &format!("{base}/ivr/fallback"),
        )
        .expect("fallback"),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: false,
        greeting: "Thanks for calling.".to_owned(),
        log_calls: false,
    }
}
