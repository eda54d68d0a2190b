//! Presets: protocol files shipped with the crate (`presets/*.toml`, embedded).

use super::spec::ProtocolSpec;

const PRESETS: &[(&str, &str)] = &[
    ("ringba", include_str!("../../presets/ringba.toml")),
    ("retreaver", include_str!("../../presets/retreaver.toml")),
    ("trackdrive", include_str!("../../presets/trackdrive.toml")),
    ("callgrid", include_str!("../../presets/callgrid.toml")),
];

/// The names of the shipped presets.
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// The TOML text of a preset.
pub fn preset_source(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A preset that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresetError {
    /// No preset has this name.
    #[error("unknown preset {name:?} (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The shipped presets, comma-separated.
        known: String,
    },
    /// The preset exists but its file does not parse as a protocol.
    #[error("preset {name:?} is broken: {message}")]
    Invalid {
        /// The preset.
        name: String,
        /// The parser's message (names the field, line and column).
        message: String,
    },
}

/// A parsed preset, saying why when there is none: an unknown name, or the preset's
/// own parse error (with its name).
pub fn load_preset(name: &str) -> Result<ProtocolSpec, PresetError> {
    let src = preset_source(name).ok_or_else(|| PresetError::Unknown {
        name: name.to_string(),
        known: preset_names().collect::<Vec<_>>().join(", "),
    })?;
    parse_preset(name, src)
}

fn parse_preset(name: &str, src: &str) -> Result<ProtocolSpec, PresetError> {
    toml::from_str(src).map_err(|e| PresetError::Invalid {
        name: name.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// A parsed preset, or `None` when it is unknown or broken; [`load_preset`] says which.
pub fn preset(name: &str) -> Option<ProtocolSpec> {
    load_preset(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse() {
        for (name, src) in PRESETS {
            toml::from_str::<ProtocolSpec>(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(preset("nope").is_none());
    }

    #[test]
    fn errors_say_unknown_or_broken() {
        let e = load_preset("nope").unwrap_err();
        assert!(
            matches!(&e, PresetError::Unknown { name, known } if name == "nope" && known.contains("ringba")),
            "{e}"
        );
        // A broken preset reports its own parse error, not "unknown".
        let broken = "description = \"x\"\n[ping.request]\nurl = 5\n";
        let e = parse_preset("mine", broken).unwrap_err();
        let PresetError::Invalid { name, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(name, "mine");
        assert!(message.contains("url"), "{message}");
        assert!(e.to_string().contains("preset \"mine\" is broken"), "{e}");
    }
}
