//! Twilio as a campaign's [`OutboundProvider`] (feature `campaign`): `Calls.create` with
//! status callbacks and asynchronous answering-machine detection, call fetch for
//! reconciliation, and status callbacks normalised into [`ProviderCall`].
//!
//! Twilio places at most its account's calls per second (1 by default) and queues the
//! rest, so a call queued before a calling window closes could start after it: pace with
//! `RateWindow::twilio(cps)` so nothing queues at Twilio.

use async_trait::async_trait;
use rust_decimal::Decimal;

use callbid_core::campaign::{
    AnsweredBy, OutboundCall, OutboundProvider, ProviderCall, ProviderCallStatus, ProviderError,
};
use callbid_core::{Currency, Money};

use crate::rest::{Call, CallInstructions, Client, CreateCall, RestError};
use crate::twiml::CallProgressEvent;

/// Twilio as an outbound provider.
#[derive(Debug, Clone)]
pub struct TwilioProvider {
    client: Client,
}

impl TwilioProvider {
    /// Over a REST client.
    pub fn new(client: Client) -> Self {
        TwilioProvider { client }
    }

    /// The `Calls.create` parameters for a campaign call: `Url` runs the flow once
    /// answered; status callbacks on every progress event; `MachineDetection=Enable` with
    /// `AsyncAmd=true` (the answer is not delayed; `AnsweredBy` arrives at the status
    /// callback URL).
    pub fn create_params(call: &OutboundCall) -> CreateCall {
        let mut p = CreateCall::new(
            call.to.as_str(),
            call.caller_id.as_str(),
            CallInstructions::Url(call.flow_url.clone()),
        );
        p.status_callback = Some(call.status_callback.clone());
        p.status_callback_event = vec![
            CallProgressEvent::Initiated,
            CallProgressEvent::Ringing,
            CallProgressEvent::Answered,
            CallProgressEvent::Completed,
        ];
        p.timeout = Some(call.ring_timeout_secs);
        p.time_limit = call.time_limit_secs;
        if call.machine_detection {
            p.machine_detection = Some("Enable".into());
            p.async_amd = Some(true);
            p.async_amd_status_callback = Some(call.status_callback.clone());
        }
        p
    }
}

fn status_of(text: &str) -> Result<ProviderCallStatus, ProviderError> {
    ProviderCallStatus::parse(text).ok_or_else(|| ProviderError::BadResponse {
        provider: "twilio",
        operation: "call status",
        message: format!("unknown CallStatus {text:?}"),
    })
}

fn normalise(call: &Call) -> Result<ProviderCall, ProviderError> {
    let status_text = call.status.as_ref().map(|s| s.as_str().to_string());
    let status = status_of(status_text.as_deref().unwrap_or("queued"))?;
    // Twilio's price is negative for a charge; report the cost as a positive amount.
    let price = match (&call.price, &call.price_unit) {
        (Some(p), Some(unit)) => match (p.trim().parse::<Decimal>(), Currency::parse(unit)) {
            (Ok(amount), Ok(cur)) => Some(Money::new(amount.abs(), cur)),
            _ => None,
        },
        _ => None,
    };
    Ok(ProviderCall {
        id: call.sid.clone().unwrap_or_default(),
        status,
        answered_by: call.answered_by.as_deref().map(AnsweredBy::from_twilio),
        duration_secs: call.duration.as_deref().and_then(|d| d.trim().parse().ok()),
        conversation_secs: None,
        legs: Vec::new(),
        price,
    })
}

fn map_err(e: RestError) -> ProviderError {
    let message = e.to_string();
    match e {
        RestError::Api { status: 429, .. } | RestError::Http { status: 429, .. } => {
            ProviderError::RateLimited {
                provider: "twilio",
                retry_after_secs: None,
            }
        }
        RestError::Api {
            operation, status, ..
        }
        | RestError::Http {
            operation, status, ..
        } if status < 500 => ProviderError::Refused {
            provider: "twilio",
            operation,
            status,
            message,
        },
        RestError::Decode { operation, .. } => ProviderError::BadResponse {
            provider: "twilio",
            operation,
            message,
        },
        RestError::InvalidArgument { .. } => ProviderError::Refused {
            provider: "twilio",
            operation: "request",
            status: 0,
            message,
        },
        _ => ProviderError::Unavailable {
            provider: "twilio",
            operation: "request",
            message,
        },
    }
}

#[async_trait]
impl OutboundProvider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn place(&self, call: &OutboundCall) -> Result<ProviderCall, ProviderError> {
        let placed = self
            .client
            .calls()
            .create(&Self::create_params(call))
            .await
            .map_err(map_err)?;
        normalise(&placed)
    }

    async fn details(&self, id: &str) -> Result<ProviderCall, ProviderError> {
        let call = self.client.calls().fetch(id).await.map_err(map_err)?;
        normalise(&call)
    }

    fn parse_status_callback(
        &self,
        fields: &[(String, String)],
    ) -> Result<ProviderCall, ProviderError> {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim());
        let id =
            get("CallSid")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ProviderError::BadResponse {
                    provider: "twilio",
                    operation: "status callback",
                    message: "CallSid is missing".into(),
                })?;
        let status = match get("CallStatus") {
            Some(s) if !s.is_empty() => status_of(s)?,
            // The AsyncAmd callback carries AnsweredBy, not always CallStatus.
            _ if get("AnsweredBy").is_some() => ProviderCallStatus::InProgress,
            _ => {
                return Err(ProviderError::BadResponse {
                    provider: "twilio",
                    operation: "status callback",
                    message: "CallStatus is missing".into(),
                })
            }
        };
        Ok(ProviderCall {
            id: id.to_string(),
            status,
            answered_by: get("AnsweredBy").map(AnsweredBy::from_twilio),
            duration_secs: get("CallDuration").and_then(|d| d.parse().ok()),
            conversation_secs: None,
            legs: Vec::new(),
            price: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::PhoneNumber;

    fn call() -> OutboundCall {
        OutboundCall {
            to: PhoneNumber::parse("+15125550123").unwrap(),
            caller_id: PhoneNumber::parse("+15125559876").unwrap(),
            flow_url: "https://calls.example.com/campaigns/c1/answer".into(),
            status_callback: "https://calls.example.com/campaigns/c1/status".into(),
            ring_timeout_secs: 25,
            time_limit_secs: Some(1800),
            machine_detection: true,
            tag: "c1".into(),
        }
    }

    #[test]
    fn create_asks_for_async_amd_and_every_progress_event() {
        let form = TwilioProvider::create_params(&call()).form();
        let pairs: Vec<(&str, &str)> = form.pairs().iter().map(|(k, v)| (*k, v.as_str())).collect();
        for want in [
            ("To", "+15125550123"),
            ("From", "+15125559876"),
            ("Url", "https://calls.example.com/campaigns/c1/answer"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", "25"),
            ("MachineDetection", "Enable"),
            ("AsyncAmd", "true"),
            (
                "AsyncAmdStatusCallback",
                "https://calls.example.com/campaigns/c1/status",
            ),
            ("TimeLimit", "1800"),
        ] {
            assert!(pairs.contains(&want), "{want:?} missing from {pairs:?}");
        }
    }

    #[test]
    fn status_callbacks_normalise() {
        let p = TwilioProvider::new(
            Client::builder("AC0123456789abcdef0123456789abcdef")
                .auth_token("t")
                .build()
                .unwrap(),
        );
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let c = p
            .parse_status_callback(&f(&[
                ("CallSid", "CA1"),
                ("CallStatus", "completed"),
                ("CallDuration", "42"),
                ("AnsweredBy", "machine_end_beep"),
            ]))
            .unwrap();
        assert_eq!(c.status, ProviderCallStatus::Completed);
        assert_eq!(c.duration_secs, Some(42));
        assert_eq!(c.answered_by, Some(AnsweredBy::Machine));
        let amd = p
            .parse_status_callback(&f(&[("CallSid", "CA1"), ("AnsweredBy", "human")]))
            .unwrap();
        assert_eq!(amd.answered_by, Some(AnsweredBy::Human));
        assert!(p
            .parse_status_callback(&f(&[("CallStatus", "busy")]))
            .is_err());
        assert!(p
            .parse_status_callback(&f(&[("CallSid", "CA1"), ("CallStatus", "weird")]))
            .is_err());
    }
}
