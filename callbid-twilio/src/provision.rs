//! Twilio as a number pool's [`NumberProvisioner`] (feature `pool`): local numbers are
//! searched with `AvailablePhoneNumbers/{Country}/Local.json` (by `AreaCode`, then by
//! `InRegion` for the state fallback), bought with `IncomingPhoneNumbers.json` (with the
//! pool's `VoiceUrl`, method `POST`) and released by looking the number up on the
//! account and deleting its `PN…` resource.
//!
//! callbid-core's [`replenish`](callbid_core::pool::provision::replenish) drives it from
//! a timer or after an overflow answer, never from a visitor's request: buying takes
//! seconds to minutes.

use async_trait::async_trait;
use futures::TryStreamExt;

use callbid_core::geo::UsState;
use callbid_core::pool::provision::{NumberProvisioner, ProvisionError};
use callbid_core::pool::{Capabilities, PoolNumber};
use callbid_core::PhoneNumber;

use crate::rest::{
    AvailablePhoneNumber, AvailableSearch, Client, IncomingPhoneNumberParams,
    ListIncomingPhoneNumbers, RestError,
};
use crate::twiml::Method;

/// Largest page Twilio's number search returns.
const MAX_SEARCH_PAGE: usize = 1000;

/// Buys and releases a pool's numbers on a Twilio account.
#[derive(Debug, Clone)]
pub struct TwilioProvisioner {
    client: Client,
    country: String,
}

impl TwilioProvisioner {
    /// US local numbers over a REST client.
    pub fn new(client: Client) -> Self {
        TwilioProvisioner {
            client,
            country: "US".to_owned(),
        }
    }

    /// Searches another NANP country (ISO 3166-1 alpha-2, e.g. `CA`).
    pub fn country(mut self, iso: impl Into<String>) -> Self {
        self.country = iso.into();
        self
    }

    async fn search(
        &self,
        filter: AvailableSearch,
        what: String,
    ) -> Result<Vec<PoolNumber>, ProvisionError> {
        let found = self
            .client
            .available_phone_numbers(&self.country)
            .local(&filter)
            .await
            .map_err(|e| provider("search", &what, &e))?;
        Ok(found.iter().filter_map(pool_number).collect())
    }
}

fn provider(step: &'static str, number: &str, e: &RestError) -> ProvisionError {
    ProvisionError::Provider {
        step,
        number: number.to_owned(),
        message: e.to_string(),
    }
}

fn capabilities(c: Option<crate::rest::Capabilities>) -> Capabilities {
    let mut out = Capabilities::voice();
    if let Some(c) = c {
        out.voice = c.voice.unwrap_or(true);
        out.sms = c.sms.unwrap_or(false);
        out.mms = c.mms.unwrap_or(false);
    }
    out
}

/// A search result as a pool number; results without a valid E.164 number are skipped.
fn pool_number(n: &AvailablePhoneNumber) -> Option<PoolNumber> {
    let number = PoolNumber::parse(n.phone_number.as_deref()?).ok()?;
    Some(number.with_capabilities(capabilities(n.capabilities)))
}

fn voice_search(limit: usize) -> AvailableSearch {
    AvailableSearch {
        voice_enabled: Some(true),
        page_size: Some(u32::try_from(limit.clamp(1, MAX_SEARCH_PAGE)).unwrap_or(1)),
        ..Default::default()
    }
}

#[async_trait]
impl NumberProvisioner for TwilioProvisioner {
    async fn search_area_code(
        &self,
        area_code: u16,
        limit: usize,
    ) -> Result<Vec<PoolNumber>, ProvisionError> {
        let mut f = voice_search(limit);
        f.area_code = Some(u32::from(area_code));
        let mut found = self.search(f, format!("AreaCode={area_code}")).await?;
        found.truncate(limit);
        Ok(found)
    }

    async fn search_state(
        &self,
        state: UsState,
        limit: usize,
    ) -> Result<Vec<PoolNumber>, ProvisionError> {
        let mut f = voice_search(limit);
        f.in_region = Some(state.as_str().to_owned());
        let mut found = self.search(f, format!("InRegion={state}")).await?;
        found.truncate(limit);
        Ok(found)
    }

    /// Buys `number` with its voice webhook at `voice_url` (POST). The number added to
    /// the pool is the one Twilio reports bought, with its capabilities.
    async fn buy(
        &self,
        number: &PoolNumber,
        voice_url: &str,
    ) -> Result<PoolNumber, ProvisionError> {
        let wanted = number.number.as_str();
        let mut params = IncomingPhoneNumberParams::buy(wanted, voice_url);
        params.voice_method = Some(Method::Post);
        let bought = self
            .client
            .incoming_phone_numbers()
            .create(&params)
            .await
            .map_err(|e| provider("buy", wanted, &e))?;
        let reported = bought
            .phone_number
            .as_deref()
            .ok_or_else(|| ProvisionError::Provider {
                step: "buy",
                number: wanted.to_owned(),
                message: "Twilio's answer has no phone_number".to_owned(),
            })?;
        let got = PoolNumber::parse(reported).map_err(|e| ProvisionError::Provider {
            step: "buy",
            number: wanted.to_owned(),
            message: format!("Twilio reported an unusable phone_number: {e}"),
        })?;
        Ok(got.with_capabilities(capabilities(bought.capabilities)))
    }

    /// Finds the number's `PN…` resource on the account and deletes it.
    async fn release(&self, number: &PhoneNumber) -> Result<(), ProvisionError> {
        let filter = ListIncomingPhoneNumbers {
            phone_number: Some(number.as_str().to_owned()),
            page_size: Some(20),
            ..Default::default()
        };
        let on_account: Vec<_> = self
            .client
            .incoming_phone_numbers()
            .list(&filter)
            .try_collect()
            .await
            .map_err(|e| provider("release", number.as_str(), &e))?;
        let sid = on_account
            .iter()
            .find(|n| n.phone_number.as_deref() == Some(number.as_str()))
            .and_then(|n| n.sid.clone())
            .ok_or_else(|| ProvisionError::Provider {
                step: "release",
                number: number.as_str().to_owned(),
                message: "not found on the account".to_owned(),
            })?;
        self.client
            .incoming_phone_numbers()
            .delete(&sid)
            .await
            .map_err(|e| provider("release", number.as_str(), &e))
    }
}
