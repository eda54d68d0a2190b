//! Phone numbers: search what is available, buy, list, update and release.

use super::{check_sid, Client, Form, Request, RestError};
use crate::twiml::Method as TwimlMethod;
use futures::stream::BoxStream;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// Filters for `AvailablePhoneNumbers/{Country}/Local.json` and `TollFree.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AvailableSearch {
    /// `AreaCode` (local only).
    pub area_code: Option<u32>,
    /// `Contains`: digits/letters pattern, `*` for any digit.
    pub contains: Option<String>,
    /// `InRegion` (e.g. `TX`).
    pub in_region: Option<String>,
    /// `InPostalCode`.
    pub in_postal_code: Option<String>,
    /// `InLocality` (city).
    pub in_locality: Option<String>,
    /// `InRateCenter`.
    pub in_rate_center: Option<String>,
    /// `InLata`.
    pub in_lata: Option<String>,
    /// `NearNumber`.
    pub near_number: Option<String>,
    /// `Distance` in miles from `NearNumber`/`NearLatLong`.
    pub distance: Option<u32>,
    /// `VoiceEnabled`.
    pub voice_enabled: Option<bool>,
    /// `SmsEnabled`.
    pub sms_enabled: Option<bool>,
    /// `MmsEnabled`.
    pub mms_enabled: Option<bool>,
    /// `ExcludeAllAddressRequired`.
    pub exclude_all_address_required: Option<bool>,
    /// `Beta`: include beta numbers.
    pub beta: Option<bool>,
    /// `PageSize` (1–1000).
    pub page_size: Option<u32>,
}

impl AvailableSearch {
    fn query(&self) -> Form {
        let mut f = Form::default();
        f.opt("AreaCode", &self.area_code);
        f.opt("Contains", &self.contains);
        f.opt("InRegion", &self.in_region);
        f.opt("InPostalCode", &self.in_postal_code);
        f.opt("InLocality", &self.in_locality);
        f.opt("InRateCenter", &self.in_rate_center);
        f.opt("InLata", &self.in_lata);
        f.opt("NearNumber", &self.near_number);
        f.opt("Distance", &self.distance);
        f.opt("VoiceEnabled", &self.voice_enabled);
        f.opt("SmsEnabled", &self.sms_enabled);
        f.opt("MmsEnabled", &self.mms_enabled);
        f.opt(
            "ExcludeAllAddressRequired",
            &self.exclude_all_address_required,
        );
        f.opt("Beta", &self.beta);
        f.opt("PageSize", &self.page_size);
        f
    }
}

/// What a number can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub struct Capabilities {
    /// Voice calls.
    #[serde(alias = "Voice")]
    pub voice: Option<bool>,
    /// SMS.
    #[serde(alias = "SMS")]
    pub sms: Option<bool>,
    /// MMS.
    #[serde(alias = "MMS")]
    pub mms: Option<bool>,
    /// Fax.
    #[serde(alias = "Fax")]
    pub fax: Option<bool>,
}

/// A number that can be bought.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AvailablePhoneNumber {
    /// E.164 number.
    pub phone_number: Option<String>,
    /// Display form.
    pub friendly_name: Option<String>,
    /// City.
    pub locality: Option<String>,
    /// State / region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO country.
    pub iso_country: Option<String>,
    /// LATA.
    pub lata: Option<String>,
    /// Rate center.
    pub rate_center: Option<String>,
    /// Latitude (string).
    pub latitude: Option<String>,
    /// Longitude (string).
    pub longitude: Option<String>,
    /// `none`, `any`, `local`, `foreign`.
    pub address_requirements: Option<String>,
    /// Beta number.
    pub beta: Option<bool>,
    /// Capabilities.
    pub capabilities: Option<Capabilities>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct AvailableList {
    #[serde(default)]
    available_phone_numbers: Vec<AvailablePhoneNumber>,
}

/// `client.available_phone_numbers(country)`.
#[derive(Debug, Clone)]
pub struct AvailablePhoneNumbers<'a> {
    client: &'a Client,
    country: String,
}

impl<'a> AvailablePhoneNumbers<'a> {
    pub(crate) fn new(client: &'a Client, country: &str) -> Self {
        AvailablePhoneNumbers {
            client,
            country: country.to_owned(),
        }
    }

    async fn search(
        &self,
        kind: &'static str,
        operation: &'static str,
        filter: &AvailableSearch,
    ) -> Result<Vec<AvailablePhoneNumber>, RestError> {
        super::check_page_size(filter.page_size)?;
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(RestError::InvalidArgument {
                field: "CountryCode",
                value: self.country.clone(),
                reason: "expected an ISO 3166-1 alpha-2 code in upper case, e.g. US".into(),
            });
        }
        let mut url = self
            .client
            .account_url(&["AvailablePhoneNumbers", &self.country, kind]);
        let q = filter.query();
        if !q.pairs().is_empty() {
            let mut qp = url.query_pairs_mut();
            for (k, v) in q.pairs() {
                qp.append_pair(k, v);
            }
        }
        let req = Request {
            operation,
            method: Method::GET,
            url,
            form: None,
        };
        let list: AvailableList = self.client.json(&req).await?;
        Ok(list.available_phone_numbers)
    }

    /// `GET …/Local.json`: local numbers matching `filter` (one page: searches
    /// return a sample, not an exhaustive list).
    pub async fn local(
        &self,
        filter: &AvailableSearch,
    ) -> Result<Vec<AvailablePhoneNumber>, RestError> {
        self.search("Local.json", "available_phone_numbers.local", filter)
            .await
    }

    /// `GET …/TollFree.json`: toll-free numbers matching `filter`.
    pub async fn toll_free(
        &self,
        filter: &AvailableSearch,
    ) -> Result<Vec<AvailablePhoneNumber>, RestError> {
        self.search("TollFree.json", "available_phone_numbers.toll_free", filter)
            .await
    }
}

/// Parameters for buying (`PhoneNumber` or `AreaCode` required) or updating a number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingPhoneNumberParams {
    /// `PhoneNumber` to buy (E.164).
    pub phone_number: Option<String>,
    /// `AreaCode`: buy any number in this area code.
    pub area_code: Option<String>,
    /// `FriendlyName`.
    pub friendly_name: Option<String>,
    /// `VoiceUrl`: the voice webhook.
    pub voice_url: Option<String>,
    /// `VoiceMethod`.
    pub voice_method: Option<TwimlMethod>,
    /// `VoiceFallbackUrl`.
    pub voice_fallback_url: Option<String>,
    /// `VoiceFallbackMethod`.
    pub voice_fallback_method: Option<TwimlMethod>,
    /// `StatusCallback`.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<TwimlMethod>,
    /// `VoiceCallerIdLookup`.
    pub voice_caller_id_lookup: Option<bool>,
    /// `VoiceApplicationSid`.
    pub voice_application_sid: Option<String>,
    /// `SmsUrl`.
    pub sms_url: Option<String>,
}

impl IncomingPhoneNumberParams {
    /// Buy `phone_number` and point its voice webhook at `voice_url`.
    pub fn buy(phone_number: impl Into<String>, voice_url: impl Into<String>) -> Self {
        IncomingPhoneNumberParams {
            phone_number: Some(phone_number.into()),
            voice_url: Some(voice_url.into()),
            ..Default::default()
        }
    }

    fn form(&self) -> Form {
        let mut f = Form::default();
        f.opt("PhoneNumber", &self.phone_number);
        f.opt("AreaCode", &self.area_code);
        f.opt("FriendlyName", &self.friendly_name);
        f.opt("VoiceUrl", &self.voice_url);
        f.opt("VoiceMethod", &self.voice_method);
        f.opt("VoiceFallbackUrl", &self.voice_fallback_url);
        f.opt("VoiceFallbackMethod", &self.voice_fallback_method);
        f.opt("StatusCallback", &self.status_callback);
        f.opt("StatusCallbackMethod", &self.status_callback_method);
        f.opt("VoiceCallerIdLookup", &self.voice_caller_id_lookup);
        f.opt("VoiceApplicationSid", &self.voice_application_sid);
        f.opt("SmsUrl", &self.sms_url);
        f
    }
}

/// Filters for listing the account's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListIncomingPhoneNumbers {
    /// `PhoneNumber` (may be partial).
    pub phone_number: Option<String>,
    /// `FriendlyName`.
    pub friendly_name: Option<String>,
    /// `Beta`.
    pub beta: Option<bool>,
    /// `PageSize` (1–1000).
    pub page_size: Option<u32>,
}

/// A number on the account.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncomingPhoneNumber {
    /// `PN…`.
    pub sid: Option<String>,
    /// `AC…`.
    pub account_sid: Option<String>,
    /// E.164 number.
    pub phone_number: Option<String>,
    /// Friendly name.
    pub friendly_name: Option<String>,
    /// Voice webhook.
    pub voice_url: Option<String>,
    /// Voice webhook method.
    pub voice_method: Option<String>,
    /// Fallback webhook.
    pub voice_fallback_url: Option<String>,
    /// Status callback.
    pub status_callback: Option<String>,
    /// Capabilities.
    pub capabilities: Option<Capabilities>,
    /// `in-use`, ….
    pub status: Option<String>,
    /// Creation time.
    pub date_created: Option<String>,
    /// Resource URI.
    pub uri: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `client.incoming_phone_numbers()`.
#[derive(Debug, Clone, Copy)]
pub struct IncomingPhoneNumbers<'a> {
    client: &'a Client,
}

impl<'a> IncomingPhoneNumbers<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        IncomingPhoneNumbers { client }
    }

    /// `POST /IncomingPhoneNumbers.json`: buy a number.
    pub async fn create(
        &self,
        params: &IncomingPhoneNumberParams,
    ) -> Result<IncomingPhoneNumber, RestError> {
        if params.phone_number.is_none() && params.area_code.is_none() {
            return Err(RestError::InvalidArgument {
                field: "PhoneNumber",
                value: String::new(),
                reason: "set PhoneNumber or AreaCode".into(),
            });
        }
        if let Some(number) = &params.phone_number {
            super::lookups::check_e164("PhoneNumber", number)?;
        }
        let req = Request {
            operation: "incoming_phone_numbers.create",
            method: Method::POST,
            url: self.client.account_url(&["IncomingPhoneNumbers.json"]),
            form: Some(params.form()),
        };
        self.client.json(&req).await
    }

    /// `GET /IncomingPhoneNumbers.json`: the account's numbers, page after page.
    pub fn list(
        &self,
        filter: &ListIncomingPhoneNumbers,
    ) -> BoxStream<'static, Result<IncomingPhoneNumber, RestError>> {
        if let Err(e) = super::check_page_size(filter.page_size) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        let mut url = self.client.account_url(&["IncomingPhoneNumbers.json"]);
        let mut f = Form::default();
        f.opt("PhoneNumber", &filter.phone_number);
        f.opt("FriendlyName", &filter.friendly_name);
        f.opt("Beta", &filter.beta);
        f.opt("PageSize", &filter.page_size);
        if !f.pairs().is_empty() {
            let mut qp = url.query_pairs_mut();
            for (k, v) in f.pairs() {
                qp.append_pair(k, v);
            }
        }
        self.client
            .paginate(url, "incoming_phone_numbers", "incoming_phone_numbers.list")
    }

    /// `POST /IncomingPhoneNumbers/{Sid}.json`: change webhooks or name.
    pub async fn update(
        &self,
        sid: &str,
        params: &IncomingPhoneNumberParams,
    ) -> Result<IncomingPhoneNumber, RestError> {
        check_sid("Sid", "PN", sid)?;
        let mut form = params.form();
        // PhoneNumber / AreaCode are not update parameters.
        form.0
            .retain(|(k, _)| *k != "PhoneNumber" && *k != "AreaCode");
        let req = Request {
            operation: "incoming_phone_numbers.update",
            method: Method::POST,
            url: self
                .client
                .account_url(&["IncomingPhoneNumbers", &format!("{sid}.json")]),
            form: Some(form),
        };
        self.client.json(&req).await
    }

    /// `DELETE /IncomingPhoneNumbers/{Sid}.json`: release the number.
    pub async fn delete(&self, sid: &str) -> Result<(), RestError> {
        check_sid("Sid", "PN", sid)?;
        let req = Request {
            operation: "incoming_phone_numbers.delete",
            method: Method::DELETE,
            url: self
                .client
                .account_url(&["IncomingPhoneNumbers", &format!("{sid}.json")]),
            form: None,
        };
        self.client.send(&req).await.map(|_| ())
    }
}
