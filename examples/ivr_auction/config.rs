//! Command line and the IVR's configurable tables: the service menu (digit → service)
//! and the tracking numbers (dialed number → campaign / source).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use callbid::core::{CampaignId, PhoneNumber, ServiceType, SourceId, ValidationError};
use clap::Parser;
use serde::Deserialize;

/// IVR auto-routing server: Twilio webhooks → ZIP and service menu → auction → <Dial>
/// the winning buyer, or the fallback chain.
#[derive(Debug, Clone, Parser)]
#[command(name = "ivr_auction", version)]
pub struct Args {
    /// Address to listen on (port 0: any free port). Default 127.0.0.1:3000, or a free
    /// loopback port with --simulate.
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// The base URL Twilio calls (what webhook signatures are computed over), e.g.
    /// https://ivr.example.com. Default: http://<listen address>.
    #[arg(long)]
    pub public_url: Option<String>,

    /// Twilio auth token for X-Twilio-Signature (default: $TWILIO_AUTH_TOKEN; when unset a
    /// random development token is generated and printed).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// DANGEROUS, local curl experiments only: accept webhooks without checking their
    /// Twilio signature. Anyone who can reach the server can then fake calls.
    #[arg(long)]
    pub insecure_skip_signature: bool,

    /// Database: sqlite://PATH (created if missing), sqlite::memory: or postgres://…
    /// (PostgreSQL needs `--features postgres`).
    #[arg(long, default_value = "sqlite://callbid.db")]
    pub database_url: String,

    /// buyers.toml describing the buyer networks. Default: start the local demo buyer
    /// network (8 buyers) on loopback and route to it.
    #[arg(long)]
    pub buyers: Option<PathBuf>,

    /// Seed of the demo buyer network and of --simulate.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Service menu: DIGIT=Service pairs, comma separated.
    #[arg(
        long,
        default_value = "1=Plumbing,2=Pest Control,3=Roofing,4=Electrician,5=Air Conditioning"
    )]
    pub menu: String,

    /// Tracking numbers → campaign/source, a TOML file (`["+18005550100"]` tables with
    /// `campaign` and `source`; see examples/ivr_auction/campaigns.toml). Default: the
    /// three demo tracking numbers of that file.
    #[arg(long)]
    pub campaigns: Option<PathBuf>,

    /// Fallback chain, tried in order: voicemail, in-house, message.
    #[arg(long, default_value = "voicemail,message")]
    pub fallback: String,

    /// In-house call center number for the `in-house` fallback step (E.164).
    #[arg(long)]
    pub in_house_number: Option<String>,

    /// What the `message` fallback step says.
    #[arg(
        long,
        default_value = "Sorry, we cannot help with your request at this time. Goodbye."
    )]
    pub fallback_message: String,

    /// Publisher payout per billable call: a percentage of revenue (70%) or a fixed
    /// USD amount (12.50).
    #[arg(long, default_value = "70%")]
    pub payout: String,

    /// Auction strategy: highest-score, highest-bid, priority[:SEED], first-accept.
    #[arg(long, default_value = "highest-score")]
    pub strategy: String,

    /// Overall auction deadline (pings, selection and accepts), milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,

    /// Seconds the buyer's phone rings before the call falls back.
    #[arg(long, default_value_t = 25)]
    pub dial_timeout: u32,

    /// Record bridged calls (record-from-answer).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub record: bool,

    /// Drive N simulated calls through the running server, print a summary and exit.
    #[arg(long, value_name = "N")]
    pub simulate: Option<usize>,

    /// Simulated calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,

    /// Do not mount the operator dashboard at /.
    #[arg(long)]
    pub no_dashboard: bool,

    /// Operator token for the dashboard and its /api routes: API clients send
    /// `Authorization: Bearer <token>`, browsers log in at /login. Required when --listen
    /// is not a loopback address. Unset on loopback: the dashboard is open.
    #[arg(long, env = "CALLBID_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,

    /// DANGEROUS: serve the dashboard (callers' numbers, exports) without a token on a
    /// non-loopback --listen address.
    #[arg(long)]
    pub insecure_open_dashboard: bool,
}

/// The service menu: which digit selects which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    entries: BTreeMap<char, (String, ServiceType)>,
}

impl Menu {
    /// Parses `1=Plumbing,2=Pest Control`.
    pub fn parse(spec: &str) -> Result<Menu, ValidationError> {
        let mut entries = BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((digit, name)) = item.split_once('=') else {
                return Err(ValidationError::new("menu", item, "expected DIGIT=Service"));
            };
            let mut chars = digit.trim().chars();
            let (Some(d), None) = (chars.next(), chars.next()) else {
                return Err(ValidationError::new(
                    "menu digit",
                    digit.trim(),
                    "must be one key 0-9",
                ));
            };
            if !d.is_ascii_digit() {
                return Err(ValidationError::new(
                    "menu digit",
                    digit.trim(),
                    "must be one key 0-9",
                ));
            }
            let name = name.trim();
            let service = ServiceType::new(name)?;
            if entries.insert(d, (name.to_owned(), service)).is_some() {
                return Err(ValidationError::new(
                    "menu digit",
                    d.to_string(),
                    "is used twice",
                ));
            }
        }
        if entries.is_empty() {
            return Err(ValidationError::new(
                "menu",
                spec,
                "needs at least one DIGIT=Service entry",
            ));
        }
        Ok(Menu { entries })
    }

    /// The service of a key press.
    pub fn service(&self, digits: &str) -> Option<(&str, &ServiceType)> {
        let mut chars = digits.trim().chars();
        match (chars.next(), chars.next()) {
            (Some(d), None) => self.entries.get(&d).map(|(n, s)| (n.as_str(), s)),
            _ => None,
        }
    }

    /// The display name of a service (its slug if it is not on the menu).
    pub fn name_of<'a>(&'a self, service: &'a ServiceType) -> &'a str {
        self.entries
            .values()
            .find(|(_, s)| s == service)
            .map_or(service.as_str(), |(n, _)| n.as_str())
    }

    /// `(digit, name, service)` in key order.
    pub fn entries(&self) -> impl Iterator<Item = (char, &str, &ServiceType)> {
        self.entries.iter().map(|(d, (n, s))| (*d, n.as_str(), s))
    }

    /// "For plumbing, press 1. For pest control, press 2."
    pub fn prompt(&self) -> String {
        self.entries()
            .map(|(d, n, _)| format!("For {}, press {d}.", n.to_lowercase()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Campaign and source of a tracking number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracking {
    /// Campaign.
    pub campaign: Option<CampaignId>,
    /// Source.
    pub source: Option<SourceId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackingEntry {
    campaign: Option<String>,
    source: Option<String>,
}

/// Tracking numbers (dialed numbers) → campaign / source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Campaigns {
    numbers: BTreeMap<PhoneNumber, Tracking>,
}

impl Campaigns {
    /// The demo tracking numbers used when no file is given.
    pub fn demo() -> Campaigns {
        let text = r#"
            ["+18005550100"]
            campaign = "home-services"
            source = "google-ads"

            ["+18005550101"]
            campaign = "home-services"
            source = "facebook"

            ["+18005550102"]
            campaign = "roofing-tv"
            source = "tv"
        "#;
        // The demo table is a constant known to parse (a unit test checks it).
        Campaigns::parse(text, "built-in demo campaigns").unwrap_or_default()
    }

    /// Parses the TOML table; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Campaigns> {
        let raw: BTreeMap<String, TrackingEntry> =
            toml::from_str(text).with_context(|| format!("{origin}: invalid campaigns TOML"))?;
        let mut numbers = BTreeMap::new();
        for (number, e) in raw {
            let phone = PhoneNumber::parse_field("tracking number", &number)
                .with_context(|| format!("{origin}: tracking number `{number}`"))?;
            let campaign = e
                .campaign
                .as_deref()
                .map(CampaignId::new)
                .transpose()
                .with_context(|| format!("{origin}: campaign of `{number}`"))?;
            let source = e
                .source
                .as_deref()
                .map(SourceId::new)
                .transpose()
                .with_context(|| format!("{origin}: source of `{number}`"))?;
            if campaign.is_none() && source.is_none() {
                bail!("{origin}: tracking number `{number}` has neither campaign nor source");
            }
            numbers.insert(phone, Tracking { campaign, source });
        }
        Ok(Campaigns { numbers })
    }

    /// Loads a file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Campaigns> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --campaigns file {}", path.display()))?;
        Campaigns::parse(&text, &path.display().to_string())
    }

    /// Campaign / source of a dialed number (empty when unknown).
    pub fn lookup(&self, dialed: Option<&PhoneNumber>) -> Tracking {
        dialed
            .and_then(|d| self.numbers.get(d))
            .cloned()
            .unwrap_or_default()
    }

    /// The tracking numbers.
    pub fn numbers(&self) -> impl Iterator<Item = &PhoneNumber> {
        self.numbers.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_parses_and_refuses_bad_entries() {
        let m = Menu::parse("1=Plumbing, 2=Pest Control").unwrap();
        assert_eq!(m.service("2").unwrap().1.as_str(), "pest_control");
        assert!(m.service("9").is_none());
        assert!(m.service("12").is_none());
        assert_eq!(
            m.prompt(),
            "For plumbing, press 1. For pest control, press 2."
        );
        for bad in [
            "",
            "x=Plumbing",
            "10=Roofing",
            "1=Plumbing,1=Roofing",
            "1",
            "1=Pl@mbing",
        ] {
            let e = Menu::parse(bad).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn the_sample_campaigns_file_is_the_demo_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/ivr_auction/campaigns.toml");
        assert_eq!(Campaigns::load(&path).unwrap(), Campaigns::demo());
    }

    #[test]
    fn campaigns_demo_and_errors() {
        let c = Campaigns::demo();
        let n = PhoneNumber::parse("+18005550101").unwrap();
        assert_eq!(c.lookup(Some(&n)).source.unwrap().as_str(), "facebook");
        assert_eq!(c.numbers().count(), 3);
        let e = Campaigns::parse("[\"555\"]\ncampaign = \"x\"\n", "f.toml").unwrap_err();
        assert!(format!("{e:#}").contains("555"), "{e:#}");
        let e = Campaigns::parse("[\"+18005550100\"]\ncampain = \"x\"\n", "f.toml").unwrap_err();
        assert!(format!("{e:#}").contains("campain"), "{e:#}");
    }
}
