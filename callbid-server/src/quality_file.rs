//! The `quality` key's file: the quality factor, exploration, transcription and the
//! buyers' postback tokens for `callbid serve` (issue 12). See [`crate::quality`].
//!
//! ```toml
//! use_quality = true        # scoring: the quality factor (default true in this file)
//! quality_prior = "0.5"     # prior conversion probability (decimal string)
//! exploration = "2"         # the exploration bonus's c (decimal string; "0" = off)
//! transcribe = true         # <Start><Transcription> before the winner's <Dial>
//!
//! [[rules]]                 # phrase rules, first match wins (default: PhraseClassifier::default_rules)
//! class = "converted"       # or "junk"
//! phrases = ["appointment", "booked"]
//!
//! [tokens]                  # buyer id = environment variable holding its postback token
//! acme = "ACME_POSTBACK_TOKEN"
//! ```
//!
//! Errors name the file, the key and the value.

use std::path::Path;

use anyhow::{anyhow, Context};
use callbid_core::quality::{PhraseClassifier, PhraseRule, TranscriptClass};
use callbid_core::scoring::ScoringConfig;
use callbid_core::BuyerId;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::quality::BuyerTokens;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "yes")]
    use_quality: bool,
    quality_prior: Option<String>,
    exploration: Option<String>,
    #[serde(default)]
    transcribe: bool,
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    class: String,
    phrases: Vec<String>,
}

/// A loaded quality file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QualityFile {
    /// The scoring configuration with the file's quality and exploration settings.
    pub scoring: ScoringConfig,
    /// Whether forwarded calls are transcribed.
    pub transcribe: bool,
    /// The transcript rules.
    pub classifier: PhraseClassifier,
    /// The buyers' postback tokens.
    pub tokens: BuyerTokens,
}

fn decimal(path: &Path, key: &str, v: &str) -> anyhow::Result<Decimal> {
    v.trim().parse().map_err(|_| {
        anyhow!(
            "{}: {key} = {v:?}: expected a decimal string",
            path.display()
        )
    })
}

/// Loads `path`; token variables are read through `env`.
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<QualityFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    parse(path, &text, env)
}

/// Parses a quality file's text (`path` only names it in errors).
pub fn parse(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<QualityFile> {
    let raw: Raw = toml::from_str(text).with_context(|| format!("{}", path.display()))?;
    let mut scoring = ScoringConfig::default();
    scoring.use_quality = raw.use_quality;
    if let Some(v) = &raw.quality_prior {
        scoring.quality_prior = decimal(path, "quality_prior", v)?;
    }
    if let Some(v) = &raw.exploration {
        scoring.exploration = decimal(path, "exploration", v)?;
    }
    scoring.validate().map_err(|e| {
        anyhow!(
            "{}: {} = {:?}: {}",
            path.display(),
            e.field,
            e.value,
            e.reason
        )
    })?;
    let rules = match raw.rules {
        None => PhraseClassifier::default_rules(),
        Some(rules) => rules
            .into_iter()
            .map(|r| {
                let class = TranscriptClass::parse(&r.class).ok_or_else(|| {
                    anyhow!(
                        "{}: rules.class = {:?}: expected converted or junk",
                        path.display(),
                        r.class
                    )
                })?;
                Ok(PhraseRule {
                    phrases: r.phrases,
                    class,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let classifier = PhraseClassifier::new(rules).map_err(|e| {
        anyhow!(
            "{}: {} = {:?}: {}",
            path.display(),
            e.field,
            e.value,
            e.reason
        )
    })?;
    let mut tokens = Vec::new();
    for (buyer, var) in raw.tokens {
        let id = BuyerId::new(&buyer)
            .map_err(|e| anyhow!("{}: tokens.{buyer}: {}", path.display(), e.reason))?;
        let token = env(&var).ok_or_else(|| {
            anyhow!(
                "{}: tokens.{buyer} = {var:?}: the variable is not set",
                path.display()
            )
        })?;
        tokens.push((id, token));
    }
    let tokens = BuyerTokens::new(tokens)
        .map_err(|e| anyhow!("{}: tokens.{}: {}", path.display(), e.value, e.reason))?;
    Ok(QualityFile {
        scoring,
        transcribe: raw.transcribe,
        classifier,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const FILE: &str = r#"
exploration = "2"
transcribe = true
[[rules]]
class = "junk"
phrases = ["wrong number"]
[tokens]
acme = "ACME_TOKEN"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "ACME_TOKEN").then(|| "acme-postback-token-0123456789".to_owned())
    }

    #[test]
    fn loads_scoring_rules_and_tokens() {
        let f = parse(Path::new("quality.toml"), FILE, env).unwrap();
        assert!(f.scoring.use_quality && f.transcribe);
        assert_eq!(f.scoring.exploration, dec!(2));
        assert_eq!(f.classifier.rules().count(), 1);
        assert_eq!(
            f.tokens
                .buyer("acme-postback-token-0123456789")
                .map(|b| b.as_str()),
            Some("acme")
        );
    }

    #[test]
    fn the_example_file_loads() {
        let text = include_str!("../../examples/quality.toml");
        let q = parse(Path::new("examples/quality.toml"), text, |_| None).unwrap();
        assert!(q.scoring.use_quality && q.transcribe);
        assert_eq!(q.scoring.exploration, Decimal::ONE);
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let e = parse(Path::new("q.toml"), "exploration = \"-1\"", env).unwrap_err();
        assert!(e.to_string().contains("exploration = \"-1\""), "{e}");
        let e = parse(Path::new("q.toml"), "[tokens]\nacme = \"NOPE\"", env).unwrap_err();
        assert!(e.to_string().contains("tokens.acme = \"NOPE\""), "{e}");
        let bad = "[[rules]]\nclass = \"sale\"\nphrases = [\"x\"]";
        let e = parse(Path::new("q.toml"), bad, env).unwrap_err();
        assert!(e.to_string().contains("rules.class = \"sale\""), "{e}");
    }
}
