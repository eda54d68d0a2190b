//! `Calls`: create, fetch, update (redirect / hang up a live call), list, and a
//! call's recordings.

use super::{check_sid, Client, Form, Request, RestError};
use crate::twiml::{CallProgressEvent, Method as TwimlMethod, RecordingEvent};
use crate::webhook::CallStatus;
use futures::stream::BoxStream;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// What Twilio runs when the created call is answered (exactly one is required).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallInstructions {
    /// `Url`: fetch TwiML from this URL.
    Url(String),
    /// `Twiml`: run this TwiML document.
    Twiml(String),
    /// `ApplicationSid`: use a TwiML app (`AP…`).
    ApplicationSid(String),
}

/// Parameters of `POST /Calls.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateCall {
    /// `To`: E.164 number, `sip:` URI or `client:` identity.
    pub to: String,
    /// `From`: a number on the account (E.164) or verified caller ID.
    pub from: String,
    /// `Url` / `Twiml` / `ApplicationSid`.
    pub instructions: CallInstructions,
    /// `Method` for `Url`.
    pub method: Option<TwimlMethod>,
    /// `StatusCallback` URL.
    pub status_callback: Option<String>,
    /// `StatusCallbackEvent` (sent as repeated keys).
    pub status_callback_event: Vec<CallProgressEvent>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<TwimlMethod>,
    /// `Timeout`: seconds to ring.
    pub timeout: Option<u32>,
    /// `Record` the call.
    pub record: Option<bool>,
    /// `RecordingStatusCallback`.
    pub recording_status_callback: Option<String>,
    /// `RecordingStatusCallbackEvent` (repeated keys).
    pub recording_status_callback_event: Vec<RecordingEvent>,
    /// `SendDigits` after connecting.
    pub send_digits: Option<String>,
    /// `MachineDetection`: `Enable` or `DetectMessageEnd`.
    pub machine_detection: Option<String>,
    /// `AsyncAmd`: run detection in the background, so the call flow starts at once.
    pub async_amd: Option<bool>,
    /// `AsyncAmdStatusCallback`: where Twilio posts `AnsweredBy` when detection ends.
    pub async_amd_status_callback: Option<String>,
    /// `TimeLimit` in seconds.
    pub time_limit: Option<u32>,
    /// `CallerId` for SIP/client calls.
    pub caller_id: Option<String>,
    /// `FallbackUrl`.
    pub fallback_url: Option<String>,
}

impl CreateCall {
    /// A call from `from` to `to` running `instructions`.
    pub fn new(
        to: impl Into<String>,
        from: impl Into<String>,
        instructions: CallInstructions,
    ) -> Self {
        CreateCall {
            to: to.into(),
            from: from.into(),
            instructions,
            method: None,
            status_callback: None,
            status_callback_event: Vec::new(),
            status_callback_method: None,
            timeout: None,
            record: None,
            recording_status_callback: None,
            recording_status_callback_event: Vec::new(),
            send_digits: None,
            machine_detection: None,
            async_amd: None,
            async_amd_status_callback: None,
            time_limit: None,
            caller_id: None,
            fallback_url: None,
        }
    }

    pub(crate) fn form(&self) -> Form {
        let mut f = Form::default();
        f.set("To", &self.to);
        f.set("From", &self.from);
        match &self.instructions {
            CallInstructions::Url(u) => f.set("Url", u),
            CallInstructions::Twiml(t) => f.set("Twiml", t),
            CallInstructions::ApplicationSid(s) => f.set("ApplicationSid", s),
        }
        f.opt("Method", &self.method);
        f.opt("StatusCallback", &self.status_callback);
        f.list("StatusCallbackEvent", &self.status_callback_event);
        f.opt("StatusCallbackMethod", &self.status_callback_method);
        f.opt("Timeout", &self.timeout);
        f.opt("Record", &self.record);
        f.opt("RecordingStatusCallback", &self.recording_status_callback);
        f.list(
            "RecordingStatusCallbackEvent",
            &self.recording_status_callback_event,
        );
        f.opt("SendDigits", &self.send_digits);
        f.opt("MachineDetection", &self.machine_detection);
        f.opt("AsyncAmd", &self.async_amd);
        f.opt("AsyncAmdStatusCallback", &self.async_amd_status_callback);
        f.opt("TimeLimit", &self.time_limit);
        f.opt("CallerId", &self.caller_id);
        f.opt("FallbackUrl", &self.fallback_url);
        f
    }
}

/// The terminal statuses accepted by a call update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateStatus {
    /// `canceled`: end a queued or ringing call.
    Canceled,
    /// `completed`: hang up an in-progress call.
    Completed,
}

impl std::fmt::Display for UpdateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpdateStatus::Canceled => "canceled",
            UpdateStatus::Completed => "completed",
        })
    }
}

/// Parameters of `POST /Calls/{Sid}.json`: redirect a live call to new TwiML
/// (how an agent-assisted call is bridged) or end it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateCall {
    /// `Url`: fetch new TwiML from here.
    pub url: Option<String>,
    /// `Method` for `Url`.
    pub method: Option<TwimlMethod>,
    /// `Twiml`: run this document now.
    pub twiml: Option<String>,
    /// `Status`: `canceled` or `completed`.
    pub status: Option<UpdateStatus>,
    /// `StatusCallback`.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<TwimlMethod>,
    /// `FallbackUrl`.
    pub fallback_url: Option<String>,
    /// `TimeLimit` in seconds.
    pub time_limit: Option<u32>,
}

impl UpdateCall {
    /// Redirect the call to the TwiML at `url`.
    pub fn redirect(url: impl Into<String>) -> Self {
        UpdateCall {
            url: Some(url.into()),
            ..Default::default()
        }
    }
    /// Replace the call's TwiML with `twiml`.
    pub fn twiml(twiml: impl Into<String>) -> Self {
        UpdateCall {
            twiml: Some(twiml.into()),
            ..Default::default()
        }
    }
    /// End the call (`completed` hangs up, `canceled` stops a ringing call).
    pub fn end(status: UpdateStatus) -> Self {
        UpdateCall {
            status: Some(status),
            ..Default::default()
        }
    }

    pub(crate) fn form(&self) -> Form {
        let mut f = Form::default();
        f.opt("Url", &self.url);
        f.opt("Method", &self.method);
        f.opt("Twiml", &self.twiml);
        f.opt("Status", &self.status);
        f.opt("StatusCallback", &self.status_callback);
        f.opt("StatusCallbackMethod", &self.status_callback_method);
        f.opt("FallbackUrl", &self.fallback_url);
        f.opt("TimeLimit", &self.time_limit);
        f
    }
}

/// Filters for `GET /Calls.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListCalls {
    /// `To`.
    pub to: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `ParentCallSid`.
    pub parent_call_sid: Option<String>,
    /// `Status`.
    pub status: Option<CallStatus>,
    /// `StartTime` (YYYY-MM-DD).
    pub start_time: Option<String>,
    /// `EndTime` (YYYY-MM-DD).
    pub end_time: Option<String>,
    /// `PageSize` (1–1000).
    pub page_size: Option<u32>,
}

/// A Call resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Call {
    /// `CA…`.
    pub sid: Option<String>,
    /// `AC…`.
    pub account_sid: Option<String>,
    /// Parent leg.
    pub parent_call_sid: Option<String>,
    /// Callee.
    pub to: Option<String>,
    /// Callee, formatted.
    pub to_formatted: Option<String>,
    /// Caller.
    pub from: Option<String>,
    /// Caller, formatted.
    pub from_formatted: Option<String>,
    /// Inbound number SID.
    pub phone_number_sid: Option<String>,
    /// Status.
    pub status: Option<CallStatus>,
    /// RFC 2822 start time.
    pub start_time: Option<String>,
    /// RFC 2822 end time.
    pub end_time: Option<String>,
    /// Duration in seconds (a string, as Twilio sends it).
    pub duration: Option<String>,
    /// Price (negative = charge).
    pub price: Option<String>,
    /// Price currency.
    pub price_unit: Option<String>,
    /// `inbound`, `outbound-api`, `outbound-dial`, ….
    pub direction: Option<String>,
    /// `human`, `machine_start`, … (answering-machine detection).
    pub answered_by: Option<String>,
    /// API version.
    pub api_version: Option<String>,
    /// Forwarding number.
    pub forwarded_from: Option<String>,
    /// CNAM.
    pub caller_name: Option<String>,
    /// Resource URI.
    pub uri: Option<String>,
    /// RFC 2822 creation time.
    pub date_created: Option<String>,
    /// RFC 2822 update time.
    pub date_updated: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A Recording resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Recording {
    /// `RE…`.
    pub sid: Option<String>,
    /// `AC…`.
    pub account_sid: Option<String>,
    /// The recorded call.
    pub call_sid: Option<String>,
    /// Conference, if any.
    pub conference_sid: Option<String>,
    /// `in-progress`, `completed`, ….
    pub status: Option<String>,
    /// Seconds (string).
    pub duration: Option<String>,
    /// 1 or 2.
    pub channels: Option<u32>,
    /// `DialVerb`, `RecordVerb`, ….
    pub source: Option<String>,
    /// Start time.
    pub start_time: Option<String>,
    /// Price.
    pub price: Option<String>,
    /// Resource URI.
    pub uri: Option<String>,
    /// Creation time.
    pub date_created: Option<String>,
    /// Fields not modelled above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `client.calls()`.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    client: &'a Client,
}

impl<'a> Calls<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Calls { client }
    }

    /// `POST /Calls.json`: place an outbound call.
    pub async fn create(&self, params: &CreateCall) -> Result<Call, RestError> {
        if params.to.is_empty() {
            return Err(RestError::InvalidArgument {
                field: "To",
                value: String::new(),
                reason: "required".into(),
            });
        }
        if params.from.is_empty() {
            return Err(RestError::InvalidArgument {
                field: "From",
                value: String::new(),
                reason: "required".into(),
            });
        }
        let req = Request {
            operation: "calls.create",
            method: Method::POST,
            url: self.client.account_url(&["Calls.json"]),
            form: Some(params.form()),
        };
        self.client.json(&req).await
    }

    /// `GET /Calls/{Sid}.json`.
    pub async fn fetch(&self, call_sid: &str) -> Result<Call, RestError> {
        check_sid("CallSid", "CA", call_sid)?;
        let req = Request {
            operation: "calls.fetch",
            method: Method::GET,
            url: self
                .client
                .account_url(&["Calls", &format!("{call_sid}.json")]),
            form: None,
        };
        self.client.json(&req).await
    }

    /// `POST /Calls/{Sid}.json`: redirect or end a live call.
    pub async fn update(&self, call_sid: &str, params: &UpdateCall) -> Result<Call, RestError> {
        check_sid("CallSid", "CA", call_sid)?;
        let req = Request {
            operation: "calls.update",
            method: Method::POST,
            url: self
                .client
                .account_url(&["Calls", &format!("{call_sid}.json")]),
            form: Some(params.form()),
        };
        self.client.json(&req).await
    }

    /// `GET /Calls.json`: every matching call, page after page.
    pub fn list(&self, filter: &ListCalls) -> BoxStream<'static, Result<Call, RestError>> {
        if let Err(e) = super::check_page_size(filter.page_size) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        let mut url = self.client.account_url(&["Calls.json"]);
        {
            let mut q = url.query_pairs_mut();
            let mut add = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            };
            add("To", &filter.to);
            add("From", &filter.from);
            add("ParentCallSid", &filter.parent_call_sid);
            add("Status", &filter.status.as_ref().map(|s| s.to_string()));
            add("StartTime", &filter.start_time);
            add("EndTime", &filter.end_time);
            add("PageSize", &filter.page_size.map(|s| s.to_string()));
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.client.paginate(url, "calls", "calls.list")
    }

    /// The media URL of a recording,
    /// `{api_base}/2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.{format}`
    /// (Twilio's Recording resource: append `.mp3` or `.wav` to the URI), under
    /// the configured API base URL's path. Fetching it needs the account's
    /// credentials. `format` is `mp3` or `wav`; anything else, or a
    /// `recording_sid` that is not `RE` plus 32 hex digits, is
    /// [`RestError::InvalidArgument`].
    pub fn recording_media_url(
        &self,
        recording_sid: &str,
        format: &str,
    ) -> Result<url::Url, RestError> {
        check_sid("RecordingSid", "RE", recording_sid)?;
        if !matches!(format, "mp3" | "wav") {
            return Err(RestError::InvalidArgument {
                field: "format",
                value: format.to_owned(),
                reason: "Twilio serves recordings as mp3 or wav".into(),
            });
        }
        Ok(self
            .client
            .account_url(&["Recordings", &format!("{recording_sid}.{format}")]))
    }

    /// `GET /Calls/{CallSid}/Recordings.json`: the call's recordings.
    pub fn recordings(&self, call_sid: &str) -> BoxStream<'static, Result<Recording, RestError>> {
        if let Err(e) = check_sid("CallSid", "CA", call_sid) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        let url = self
            .client
            .account_url(&["Calls", call_sid, "Recordings.json"]);
        self.client.paginate(url, "recordings", "calls.recordings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_form_uses_pascal_case_and_repeated_keys() {
        let mut c = CreateCall::new(
            "+15551230000",
            "+15557650000",
            CallInstructions::Url("https://x/v".into()),
        );
        c.status_callback_event = vec![CallProgressEvent::Initiated, CallProgressEvent::Answered];
        c.record = Some(true);
        c.timeout = Some(20);
        assert_eq!(
            c.form().encode(),
            "To=%2B15551230000&From=%2B15557650000&Url=https%3A%2F%2Fx%2Fv&StatusCallbackEvent=initiated&StatusCallbackEvent=answered&Timeout=20&Record=true"
        );
        assert_eq!(
            UpdateCall::end(UpdateStatus::Completed).form().encode(),
            "Status=completed"
        );
    }
}
