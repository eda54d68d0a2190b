//! [`OutboundProvider`] on Exotel: results normalised into [`ProviderCall`].

use async_trait::async_trait;

use callbid_core::campaign::{
    AnsweredBy, LegDuration, OutboundCall, OutboundProvider, ProviderCall, ProviderCallStatus,
    ProviderError,
};
use callbid_core::{Currency, Money};

use crate::client::ExotelClient;
use crate::error::ExotelError;
use crate::types::{ConnectToFlow, ExotelCall};
use crate::webhook::StatusCallback;

/// Exotel as a campaign's provider. Prices are in the account's currency (INR by
/// default).
#[derive(Debug, Clone)]
pub struct ExotelProvider {
    client: ExotelClient,
    currency: Currency,
}

impl ExotelProvider {
    /// Over `client`, with prices in `currency`.
    pub fn new(client: ExotelClient, currency: Currency) -> Self {
        ExotelProvider { client, currency }
    }

    fn normalise(
        &self,
        call: &ExotelCall,
        operation: &'static str,
    ) -> Result<ProviderCall, ProviderError> {
        let status_text = call.status.as_deref().unwrap_or("queued");
        let status =
            ProviderCallStatus::parse(status_text).ok_or_else(|| ProviderError::BadResponse {
                provider: "exotel",
                operation,
                message: format!("unknown Status {status_text:?}"),
            })?;
        let details = call.details.as_ref();
        let legs = details
            .map(|d| {
                d.legs
                    .iter()
                    .filter_map(|l| {
                        let leg = l.leg.id.as_deref()?.parse().ok()?;
                        Some(LegDuration {
                            leg,
                            seconds: l.leg.on_call_duration.unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProviderCall {
            id: call.sid.clone(),
            status,
            answered_by: call.answered_by.as_deref().map(AnsweredBy::from_twilio),
            duration_secs: call.duration_secs(),
            conversation_secs: details.and_then(|d| d.conversation_duration),
            legs,
            price: call.price_decimal().map(|p| Money::new(p, self.currency)),
        })
    }
}

fn map_err(e: ExotelError) -> ProviderError {
    match e {
        ExotelError::RateLimited { retry_after, .. } => ProviderError::RateLimited {
            provider: "exotel",
            retry_after_secs: retry_after.map(|d| d.as_secs()),
        },
        ExotelError::Api {
            operation,
            status,
            message,
            ..
        } if status < 500 => ProviderError::Refused {
            provider: "exotel",
            operation,
            status,
            message,
        },
        ExotelError::Api {
            operation, message, ..
        } => ProviderError::Unavailable {
            provider: "exotel",
            operation,
            message,
        },
        ExotelError::Transport { operation, source } => ProviderError::Unavailable {
            provider: "exotel",
            operation,
            message: source.to_string(),
        },
        ExotelError::Decode {
            operation,
            reason,
            body,
        } => ProviderError::BadResponse {
            provider: "exotel",
            operation,
            message: format!("{reason}: {body}"),
        },
        other => ProviderError::Refused {
            provider: "exotel",
            operation: "request",
            status: 0,
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl OutboundProvider for ExotelProvider {
    fn name(&self) -> &'static str {
        "exotel"
    }

    async fn place(&self, call: &OutboundCall) -> Result<ProviderCall, ProviderError> {
        let mut req = ConnectToFlow::new(call.to.clone(), call.caller_id.clone(), &call.flow_url)
            .status_callback(&call.status_callback)
            .time_out(call.ring_timeout_secs)
            .custom_field(call.tag.clone())
            .map_err(map_err)?;
        if let Some(limit) = call.time_limit_secs {
            req = req.time_limit(limit).map_err(map_err)?;
        }
        let placed = self.client.connect_to_flow(&req).await.map_err(map_err)?;
        self.normalise(&placed, "Calls/connect")
    }

    async fn details(&self, id: &str) -> Result<ProviderCall, ProviderError> {
        let call = self.client.call_details(id).await.map_err(map_err)?;
        self.normalise(&call, "call details")
    }

    fn parse_status_callback(
        &self,
        fields: &[(String, String)],
    ) -> Result<ProviderCall, ProviderError> {
        let cb = StatusCallback::from_fields(fields).map_err(|e| ProviderError::BadResponse {
            provider: "exotel",
            operation: "status callback",
            message: e.to_string(),
        })?;
        let status =
            ProviderCallStatus::parse(&cb.status).ok_or_else(|| ProviderError::BadResponse {
                provider: "exotel",
                operation: "status callback",
                message: format!("unknown Status {:?}", cb.status),
            })?;
        Ok(ProviderCall {
            id: cb.call_sid,
            status,
            answered_by: None,
            duration_secs: None,
            conversation_secs: cb.conversation_duration,
            legs: Vec::new(),
            price: None,
        })
    }
}
