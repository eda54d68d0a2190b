//! The call being auctioned.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::geo::{AreaCodeInfo, UsState};
use crate::ids::{CallId, CampaignId, ServiceType, SourceId};
use crate::phone::PhoneNumber;
use crate::zip::Zip;

/// Everything known about a qualified call when its auction starts.
///
/// ```
/// use callbid_core::{CallContext, CallId, Zip, ServiceType, PhoneNumber};
/// use chrono::{TimeZone, Utc};
/// let call = CallContext::new(
///     CallId::new("CA123").unwrap(),
///     "78701".parse().unwrap(),
///     ServiceType::new("plumbing").unwrap(),
///     Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap(),
/// )
/// .with_caller("+15125550123".parse().unwrap())
/// .with_attribute("lead_type", "emergency");
/// assert_eq!(call.state().unwrap().as_str(), "TX");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallContext {
    /// The call's id (Twilio `CallSid` for live calls).
    pub call_id: CallId,
    /// The caller's number, when caller id is present.
    pub caller: Option<PhoneNumber>,
    /// The tracking number that was dialed.
    pub dialed: Option<PhoneNumber>,
    /// The caller's ZIP code.
    pub zip: Zip,
    /// The service the caller needs.
    pub service: ServiceType,
    /// The campaign, usually implied by the dialed number.
    pub campaign: Option<CampaignId>,
    /// The traffic source / publisher.
    pub source: Option<SourceId>,
    /// When the call was received (an instant; zones are applied per buyer).
    pub received_at: DateTime<Utc>,
    /// Free-form attributes (custom tags buyers may want).
    pub attributes: BTreeMap<String, String>,
}

impl CallContext {
    /// A call with its required facts; add the optional ones with the `with_*` methods.
    pub fn new(
        call_id: CallId,
        zip: Zip,
        service: ServiceType,
        received_at: DateTime<Utc>,
    ) -> Self {
        CallContext {
            call_id,
            caller: None,
            dialed: None,
            zip,
            service,
            campaign: None,
            source: None,
            received_at,
            attributes: BTreeMap::new(),
        }
    }

    /// Sets the caller's number.
    pub fn with_caller(mut self, caller: PhoneNumber) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Sets the dialed (tracking) number.
    pub fn with_dialed(mut self, dialed: PhoneNumber) -> Self {
        self.dialed = Some(dialed);
        self
    }

    /// Sets the campaign.
    pub fn with_campaign(mut self, campaign: CampaignId) -> Self {
        self.campaign = Some(campaign);
        self
    }

    /// Sets the traffic source.
    pub fn with_source(mut self, source: SourceId) -> Self {
        self.source = Some(source);
        self
    }

    /// Adds a free-form attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Area code facts of the caller's number (state, time zone), when known.
    pub fn caller_area(&self) -> Option<AreaCodeInfo> {
        self.caller.as_ref().and_then(PhoneNumber::area_info)
    }

    /// The caller's state: from the ZIP when the table knows it, else from the caller's area code.
    pub fn state(&self) -> Option<UsState> {
        self.zip
            .state()
            .or_else(|| self.caller_area().map(|a| a.state))
    }
}
