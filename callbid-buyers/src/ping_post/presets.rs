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

/// A parsed preset, or `None` when there is no such preset (or it fails to parse,
/// which the crate's tests rule out).
pub fn preset(name: &str) -> Option<ProtocolSpec> {
    preset_source(name).and_then(|s| toml::from_str(s).ok())
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
}
