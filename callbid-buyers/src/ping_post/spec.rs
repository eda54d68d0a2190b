//! The serde shape of a ping-post protocol: what a preset file holds and what a
//! `[buyer.ping_post]` table may give inline.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::http::Method;

/// A whole protocol: how to ping, read the answer, and optionally accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProtocolSpec {
    /// What this protocol is (presets say which network).
    #[serde(default)]
    pub description: Option<String>,
    /// Default base URL (`{base}` in URL templates).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Parameters a buyer must set (`{param.NAME}`).
    #[serde(default)]
    pub required_params: Vec<String>,
    /// Default parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Default authentication shape (the secret comes from the buyer's `api_key_env`).
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// What the buyer can do.
    #[serde(default)]
    pub capabilities: CapabilitiesSpec,
    /// The ping step.
    pub ping: PingSpec,
    /// The optional accept (post) step.
    #[serde(default)]
    pub accept: Option<AcceptSpec>,
}

/// Capability flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CapabilitiesSpec {
    /// Calls without caller id are not sent to this buyer.
    pub needs_caller_id: bool,
    /// The buyer may answer with SIP destinations.
    pub accepts_sip: bool,
}

impl Default for CapabilitiesSpec {
    fn default() -> Self {
        CapabilitiesSpec {
            needs_caller_id: false,
            accepts_sip: true,
        }
    }
}

/// One HTTP request, as templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RequestSpec {
    /// The method (default `POST`).
    #[serde(default)]
    pub method: Method,
    /// The URL template (`{base}/…`); only placeholders sure to have a value may appear.
    pub url: String,
    /// Query parameters (value templates; percent-encoded; a parameter whose value uses
    /// an absent placeholder is left out).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (value templates; left out when a value is absent).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body: a table whose string leaves are templates (a string using an absent
    /// placeholder is left out of its object, `null` in an array).
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// A form body (value templates; form-encoded; left out when a value is absent).
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
}

/// A condition on the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Predicate {
    /// Where to look (JSON pointer).
    pub pointer: String,
    /// The value must equal this (numbers compare as decimals; a numeric string equals
    /// the number).
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// The value must equal one of these.
    #[serde(default)]
    pub one_of: Option<Vec<toml::Value>>,
    /// The value must exist and be non-null (`true`) or be absent/null (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// The value must be a number (or numeric string) other than zero.
    #[serde(default)]
    pub nonzero: Option<bool>,
}

/// The ping step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PingSpec {
    /// The request.
    pub request: RequestSpec,
    /// How to read the answer.
    pub response: PingResponseSpec,
}

/// How to read a ping answer (all fields are JSON pointers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PingResponseSpec {
    /// Statuses meaning "no bid" (default `[204]`).
    #[serde(default = "default_no_bid")]
    pub no_bid_statuses: Vec<u16>,
    /// All must hold for the answer to be a bid; otherwise it is a no-bid.
    #[serde(default)]
    pub accepted: Vec<Predicate>,
    /// The price.
    pub price: String,
    /// Where the destination may be (phone or SIP), tried in order.
    #[serde(default)]
    pub destination: Vec<String>,
    /// The buyer's bid id.
    #[serde(default)]
    pub bid_id: Option<String>,
    /// Seconds until the bid lapses.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// When the bid lapses (RFC 3339 or epoch seconds/milliseconds).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Minimum billable duration in seconds.
    #[serde(default)]
    pub min_duration: Option<String>,
    /// Why the buyer declined.
    #[serde(default)]
    pub reject_reason: Option<String>,
    /// The message of a 4xx answer (default `/message`).
    #[serde(default)]
    pub error_message: Option<String>,
    /// Values kept for the accept step (`{reply.NAME}`).
    #[serde(default)]
    pub keep: BTreeMap<String, String>,
}

fn default_no_bid() -> Vec<u16> {
    vec![204]
}

/// The accept (post) step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AcceptSpec {
    /// The request (`{bid_id}`, `{price}`, `{reply.NAME}` allowed).
    pub request: RequestSpec,
    /// How to read the answer.
    pub response: AcceptResponseSpec,
}

/// How to read an accept answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AcceptResponseSpec {
    /// All must hold for the accept to have succeeded.
    #[serde(default)]
    pub accepted: Vec<Predicate>,
    /// Where the destination may be, tried in order.
    pub destination: Vec<String>,
    /// Why the buyer refused.
    #[serde(default)]
    pub reject_reason: Option<String>,
}

/// How a buyer authenticates.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuthSpec {
    /// A header carrying the key (`Authorization: Bearer …`, `X-Api-Key: …`).
    Header {
        /// The header name.
        name: String,
        /// Written before the key (e.g. `"Bearer "`).
        #[serde(default)]
        prefix: Option<String>,
        /// The environment variable holding the key (else the buyer's `api_key_env`).
        #[serde(default)]
        value_env: Option<String>,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        #[serde(default)]
        username: Option<String>,
        /// The environment variable holding the user name (instead of `username`).
        #[serde(default)]
        username_env: Option<String>,
        /// The environment variable holding the password (else the buyer's `api_key_env`).
        #[serde(default)]
        password_env: Option<String>,
    },
    /// A query parameter carrying the key (`?key=…`).
    Query {
        /// The parameter name.
        name: String,
        /// The environment variable holding the key (else the buyer's `api_key_env`).
        #[serde(default)]
        value_env: Option<String>,
    },
}

impl fmt::Debug for AuthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only environment variable names are held here, never secrets.
        match self {
            AuthSpec::Header {
                name,
                prefix,
                value_env,
            } => f
                .debug_struct("Header")
                .field("name", name)
                .field("prefix", prefix)
                .field("value_env", value_env)
                .finish(),
            AuthSpec::Basic {
                username,
                username_env,
                password_env,
            } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("username_env", username_env)
                .field("password_env", password_env)
                .finish(),
            AuthSpec::Query { name, value_env } => f
                .debug_struct("Query")
                .field("name", name)
                .field("value_env", value_env)
                .finish(),
        }
    }
}
