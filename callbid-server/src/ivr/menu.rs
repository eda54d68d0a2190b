//! The IVR's configurable tables: the service menu (digit → service)
//! and the tracking numbers (dialed number → campaign / source).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use callbid_core::{CampaignId, PhoneNumber, ServiceType, SourceId, ValidationError};
use serde::Deserialize;

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
            .join("../examples/ivr_auction/campaigns.toml");
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
