//! The macros that declare TwiML elements: struct, attribute setters, the
//! `.attr()` escape hatch, constructors, child lists and rendering.

/// Declares a TwiML element: struct, attribute setters, the escape hatch
/// ([`attr`](crate::twiml::Say::attr)) and attribute collection.
macro_rules! element {
    (
        $(#[$meta:meta])*
        $name:ident = $tag:literal;
        fields { $( $xf:ident : $xty:ty ),* $(,)? }
        attrs { $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $wire:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $xf: $xty, )*
            $( $field: Option<$ty>, )*
            extra: Vec<($crate::twiml::AttrName, String)>,
        }

        impl $name {
            /// The element name as it appears in TwiML.
            pub const TAG: &'static str = $tag;

            $(
                $(#[$fmeta])*
                #[doc = ""]
                #[doc = concat!("Sets the `", $wire, "` attribute.")]
                #[must_use]
                pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// Sets an attribute this builder has no setter for, by its wire
            /// name exactly as Twilio spells it (no case conversion). Setting a
            /// name twice keeps the last value; a name that a typed setter also
            /// sets replaces that setter's value (one attribute is rendered).
            /// Extra attributes sort with the others by wire name.
            #[must_use]
            pub fn attr(mut self, name: $crate::twiml::AttrName, value: impl Into<String>) -> Self {
                let value = value.into();
                match self.extra.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => self.extra.push((name, value)),
                }
                self
            }

            /// The attributes that are set, as `(wire name, rendered value)` in
            /// the order they are rendered (sorted by name), before escaping.
            pub fn attributes(&self) -> Vec<(std::borrow::Cow<'static, str>, String)> {
                #[allow(unused_mut)]
                let mut out: Vec<(std::borrow::Cow<'static, str>, String)> = Vec::new();
                $( if let Some(v) = &self.$field {
                    out.push((std::borrow::Cow::Borrowed($wire), $crate::twiml::AttrValue::render(v)));
                } )*
                $crate::twiml::merge_extra(&mut out, &self.extra);
                out
            }
        }
    };
}

/// `impl Render` for an element with a `String` text field and/or a child list.
macro_rules! impl_render {
    ($name:ident, text: $text:ident, children: $kids:ident) => {
        impl $crate::twiml::Render for $name {
            fn render(&self, out: &mut String) {
                let kids: Vec<&dyn $crate::twiml::Render> = self
                    .$kids
                    .iter()
                    .map(|c| c as &dyn $crate::twiml::Render)
                    .collect();
                $crate::twiml::write_element(
                    out,
                    Self::TAG,
                    &mut self.attributes(),
                    Some(&self.$text),
                    &kids,
                );
            }
        }
    };
    ($name:ident, text: $text:ident) => {
        impl $crate::twiml::Render for $name {
            fn render(&self, out: &mut String) {
                $crate::twiml::write_element(
                    out,
                    Self::TAG,
                    &mut self.attributes(),
                    Some(&self.$text),
                    &[],
                );
            }
        }
    };
    ($name:ident, children: $kids:ident) => {
        impl $crate::twiml::Render for $name {
            fn render(&self, out: &mut String) {
                let kids: Vec<&dyn $crate::twiml::Render> = self
                    .$kids
                    .iter()
                    .map(|c| c as &dyn $crate::twiml::Render)
                    .collect();
                $crate::twiml::write_element(out, Self::TAG, &mut self.attributes(), None, &kids);
            }
        }
    };
    ($name:ident) => {
        impl $crate::twiml::Render for $name {
            fn render(&self, out: &mut String) {
                $crate::twiml::write_element(out, Self::TAG, &mut self.attributes(), None, &[]);
            }
        }
    };
}

/// `new(text)` for an element whose text is a `String` field, plus its getter.
macro_rules! text_new {
    ($name:ident, $field:ident, $doc:literal) => {
        impl $name {
            #[doc = concat!("`<", stringify!($name), ">` with ", $doc, " as its text (an empty string writes no text).")]
            pub fn new($field: impl Into<String>) -> Self {
                $name {
                    $field: $field.into(),
                    ..Default::default()
                }
            }
            #[doc = concat!("The text: ", $doc, ".")]
            pub fn $field(&self) -> &str {
                &self.$field
            }
        }
    };
}

/// `new()` for an element without text.
macro_rules! empty_new {
    ($($name:ident),* $(,)?) => {$(
        impl $name {
            #[doc = concat!("An empty `<", stringify!($name), ">`; set attributes with the setters.")]
            pub fn new() -> Self {
                $name::default()
            }
        }
    )*};
}

/// The child list of an element: one appender per allowed child type, a
/// generic `child`, and the `children` getter.
macro_rules! children {
    ($name:ident . $field:ident : $enum:ident { $( $method:ident ( $ty:ident ) ),* $(,)? }) => {
        impl $name {
            $(
                #[doc = concat!("Appends a nested `", stringify!($ty), "`.")]
                #[must_use]
                // Named after twilio-python's methods (`say.sub()`), not `ops::Sub`.
                #[allow(clippy::should_implement_trait)]
                pub fn $method(self, v: $ty) -> Self {
                    self.child(v)
                }
            )*
            /// Appends any allowed child.
            #[must_use]
            pub fn child(mut self, child: impl Into<$enum>) -> Self {
                self.$field.push(child.into());
                self
            }
            /// The nested elements in order.
            pub fn children(&self) -> &[$enum] {
                &self.$field
            }
        }
    };
}

/// An enum of the children one element allows, with `Render` and `From`
/// impls; `text` adds a `Text(String)` variant for mixed content (SSML).
macro_rules! child_enum {
    ($(#[$meta:meta])* $enum:ident { $($v:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        // Elements with many optional attributes (ConversationRelay) are large;
        // documents are built once per webhook, so they stay unboxed for a
        // plain `Enum::Variant(value)` API.
        #[allow(clippy::large_enum_variant)]
        pub enum $enum {
            $( #[doc = concat!("`", stringify!($v), "`.")] $v($v), )*
        }
        impl $crate::twiml::Render for $enum {
            fn render(&self, out: &mut String) {
                match self { $( $enum::$v(x) => $crate::twiml::Render::render(x, out), )* }
            }
        }
        $( impl From<$v> for $enum { fn from(v: $v) -> Self { $enum::$v(v) } } )*
    };
    ($(#[$meta:meta])* $enum:ident text { $($v:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        // Elements with many optional attributes (ConversationRelay) are large;
        // documents are built once per webhook, so they stay unboxed for a
        // plain `Enum::Variant(value)` API.
        #[allow(clippy::large_enum_variant)]
        pub enum $enum {
            /// Plain text between elements (escaped like any text).
            Text(String),
            $( #[doc = concat!("`", stringify!($v), "`.")] $v($v), )*
        }
        impl $crate::twiml::Render for $enum {
            fn render(&self, out: &mut String) {
                match self {
                    $enum::Text(t) => out.push_str(&$crate::twiml::escape_text(t)),
                    $( $enum::$v(x) => $crate::twiml::Render::render(x, out), )*
                }
            }
        }
        $( impl From<$v> for $enum { fn from(v: $v) -> Self { $enum::$v(v) } } )*
        impl From<String> for $enum { fn from(v: String) -> Self { $enum::Text(v) } }
        impl From<&str> for $enum { fn from(v: &str) -> Self { $enum::Text(v.to_owned()) } }
    };
}
