//! Transcript classification by phrase rules (no ML), the transcript side of the
//! scoring engine's quality factor.
//!
//! A [`PhraseClassifier`] holds rules in the configured order; each rule has phrases and
//! an [`TranscriptClass`]. Matching is case-insensitive and on word boundaries: text and
//! phrases are split into words (runs of letters, digits and apostrophes; everything else
//! separates), and a phrase matches when its words appear consecutively in the text's
//! words. So `booked` matches "Booked!" but not "overbooked", and `wrong number` matches
//! "WRONG   number". The **first rule, in configured order, with a matching phrase wins**;
//! no match is no classification (and no quality evidence).
//!
//! A call's transcript arrives in fragments (Twilio's real-time transcription sends one
//! callback per final utterance). Each fragment is classified on its own and the call's
//! classification is the strongest of its fragments' (`converted` over `junk`; see
//! [`TranscriptClass::strongest`]), so it depends on the set of fragments and not on the
//! order their callbacks arrive in.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::state::QualityObservation;

/// What a matching rule says about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TranscriptClass {
    /// Not a sale (wrong number, spam, no service): quality evidence "not converted".
    Junk,
    /// A sale (an appointment booked): quality evidence "converted".
    Converted,
}

impl TranscriptClass {
    /// The stored name (`junk`, `converted`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TranscriptClass::Junk => "junk",
            TranscriptClass::Converted => "converted",
        }
    }

    /// Parses a stored or configured name.
    pub fn parse(s: &str) -> Option<TranscriptClass> {
        match s.trim().to_ascii_lowercase().as_str() {
            "junk" => Some(TranscriptClass::Junk),
            "converted" => Some(TranscriptClass::Converted),
            _ => None,
        }
    }

    /// The stronger of two classifications of one call's fragments: `converted` beats
    /// `junk` beats none.
    pub fn strongest(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        a.max(b)
    }

    /// The quality evidence this classification gives.
    pub fn observation(&self) -> QualityObservation {
        QualityObservation::transcript(*self == TranscriptClass::Converted)
    }
}

/// One configured rule: any of `phrases` classifies the text as `class`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhraseRule {
    /// The phrases (matched case-insensitively on word boundaries).
    pub phrases: Vec<String>,
    /// The classification when one matches.
    pub class: TranscriptClass,
}

/// The result of [`PhraseClassifier::classify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The class.
    pub class: TranscriptClass,
    /// The index of the rule that matched, in configured order.
    pub rule: usize,
    /// The phrase that matched, as configured.
    pub phrase: String,
}

/// Ordered phrase rules (module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhraseClassifier {
    rules: Vec<(PhraseRule, Vec<Vec<String>>)>,
}

/// Lower-cased words of `text` (letters, digits, apostrophes).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl PhraseClassifier {
    /// A classifier over `rules`, in order. Errors name a rule whose phrase has no word.
    pub fn new(rules: Vec<PhraseRule>) -> Result<Self, ValidationError> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let mut compiled = Vec::with_capacity(rule.phrases.len());
            for p in &rule.phrases {
                let w = words(p);
                if w.is_empty() {
                    return Err(ValidationError::new(
                        "transcript_rules.phrases",
                        p,
                        format!("rule {i}: a phrase needs at least one word"),
                    ));
                }
                compiled.push(w);
            }
            out.push((rule, compiled));
        }
        Ok(PhraseClassifier { rules: out })
    }

    /// The default rules: `appointment`, `booked`, `scheduled` → converted; `wrong number`,
    /// `not interested`, `stop calling` → junk (converted rules first).
    pub fn default_rules() -> Vec<PhraseRule> {
        let rule = |class, phrases: &[&str]| PhraseRule {
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            class,
        };
        vec![
            rule(
                TranscriptClass::Converted,
                &["appointment", "booked", "scheduled"],
            ),
            rule(
                TranscriptClass::Junk,
                &["wrong number", "not interested", "stop calling"],
            ),
        ]
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &PhraseRule> {
        self.rules.iter().map(|(r, _)| r)
    }

    /// The first rule (configured order) with a phrase in `text`, if any.
    pub fn classify(&self, text: &str) -> Option<Classification> {
        let text = words(text);
        for (i, (rule, phrases)) in self.rules.iter().enumerate() {
            for (p, w) in rule.phrases.iter().zip(phrases) {
                if text.windows(w.len()).any(|win| win == w.as_slice()) {
                    return Some(Classification {
                        class: rule.class,
                        rule: i,
                        phrase: p.clone(),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> PhraseClassifier {
        PhraseClassifier::new(PhraseClassifier::default_rules()).unwrap()
    }

    #[test]
    fn word_boundaries_and_case() {
        let c = classifier();
        let hit = c.classify("Great, you're BOOKED for Tuesday!").unwrap();
        assert_eq!(
            (hit.class, hit.rule, hit.phrase.as_str()),
            (TranscriptClass::Converted, 0, "booked")
        );
        assert_eq!(c.classify("we are overbooked"), None);
        let junk = c.classify("sorry, WRONG\n  number").unwrap();
        assert_eq!(junk.class, TranscriptClass::Junk);
        assert_eq!(c.classify("wrong numbers"), None);
    }

    #[test]
    fn the_first_rule_in_configured_order_wins() {
        let text = "wrong number? no, I'd like an appointment";
        assert_eq!(
            classifier().classify(text).unwrap().class,
            TranscriptClass::Converted
        );
        let mut rules = PhraseClassifier::default_rules();
        rules.reverse();
        let c = PhraseClassifier::new(rules).unwrap();
        assert_eq!(c.classify(text).unwrap().class, TranscriptClass::Junk);
    }

    #[test]
    fn empty_phrases_are_refused_by_name() {
        let e = PhraseClassifier::new(vec![PhraseRule {
            phrases: vec!["ok".into(), " !! ".into()],
            class: TranscriptClass::Junk,
        }])
        .unwrap_err();
        assert_eq!(e.field, "transcript_rules.phrases");
        assert_eq!(e.value, " !! ");
    }

    #[test]
    fn strongest_is_order_free() {
        use TranscriptClass::*;
        let all = [None, Some(Junk), Some(Converted)];
        for a in all {
            for b in all {
                assert_eq!(
                    TranscriptClass::strongest(a, b),
                    TranscriptClass::strongest(b, a)
                );
            }
        }
        assert_eq!(
            TranscriptClass::strongest(Some(Junk), Some(Converted)),
            Some(Converted)
        );
    }
}
