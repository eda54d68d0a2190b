//! Identifiers and service types.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

fn validate_id(field: &'static str, input: &str) -> Result<(), ValidationError> {
    if input.is_empty() {
        return Err(ValidationError::new(field, input, "must not be empty"));
    }
    if input.len() > 128 {
        return Err(ValidationError::new(field, input, "longer than 128 bytes"));
    }
    if let Some(c) = input
        .chars()
        .find(|c| !(c.is_ascii_graphic()) || *c == '"' || *c == '\\')
    {
        return Err(ValidationError::new(
            field,
            input,
            format!(
                "character {c:?} not allowed (printable ASCII, no spaces, quotes or backslashes)"
            ),
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        /// Equal text; clones of one id (the usual case) compare without reading it.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        /// The text's hash, as the derived one (equal ids hash equally).
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

        impl $name {
            /// Validates and wraps an identifier: 1 to 128 bytes of printable ASCII without
            /// spaces, quotes or backslashes.
            pub fn new(id: impl AsRef<str>) -> Result<Self, ValidationError> {
                let id = id.as_ref();
                validate_id($field, id)?;
                Ok(Self(Arc::from(id)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Identifies a buyer (an advertiser or a network endpoint), e.g. `service-direct`.
    BuyerId,
    "buyer id"
);
string_id!(
    /// Identifies a call, e.g. Twilio's `CallSid`.
    CallId,
    "call id"
);
string_id!(
    /// Identifies a campaign (usually the tracking number's campaign).
    CampaignId,
    "campaign id"
);
string_id!(
    /// Identifies a traffic source / publisher / sub id.
    SourceId,
    "source id"
);

/// A service category the caller needs (`plumbing`, `pest_control`, …): a lowercase slug.
/// Input is normalized: trimmed, lowercased, spaces and dashes become `_`.
///
/// ```
/// use callbid_core::ServiceType;
/// assert_eq!(ServiceType::new("Pest Control").unwrap().as_str(), "pest_control");
/// assert!(ServiceType::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceType(Arc<str>);

impl ServiceType {
    /// Normalizes and validates a service type.
    pub fn new(input: impl AsRef<str>) -> Result<Self, ValidationError> {
        let raw = input.as_ref();
        let norm: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        if norm.is_empty() || norm.len() > 64 {
            return Err(ValidationError::new(
                "service type",
                raw,
                "must be 1 to 64 characters",
            ));
        }
        if let Some(c) = norm
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(ValidationError::new(
                "service type",
                raw,
                format!("character {c:?} not allowed (letters, digits, spaces, '-' or '_')"),
            ));
        }
        Ok(ServiceType(Arc::from(norm)))
    }

    /// The normalized slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceType({})", self.0)
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ServiceType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for ServiceType {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ServiceType> for String {
    fn from(s: ServiceType) -> String {
        s.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        assert_eq!(
            BuyerId::new("service-direct").unwrap().as_str(),
            "service-direct"
        );
        for bad in ["", "a b", "quote\"", &"x".repeat(129)] {
            let e = BuyerId::new(bad).unwrap_err();
            assert_eq!(e.field, "buyer id");
        }
        assert_eq!(CallId::new("").unwrap_err().field, "call id");
        assert!(serde_json::from_str::<CampaignId>("\"\"").is_err());
    }

    #[test]
    fn service_types_normalize() {
        assert_eq!(
            ServiceType::new(" AIR-conditioning ").unwrap().as_str(),
            "air_conditioning"
        );
        let e = ServiceType::new("plumbing!").unwrap_err();
        assert_eq!(e.field, "service type");
        assert_eq!(e.value, "plumbing!");
    }
}
