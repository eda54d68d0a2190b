//! SSML inside `<Say>`: `<break>`, `<emphasis>`, `<lang>`, `<p>`, `<phoneme>`,
//! `<prosody>`, `<s>`, `<say-as>`, `<sub>`, `<w>`, with the nesting
//! twilio-python 9.x allows (`Say.break_()`, `Say.emphasis()`, …; its classes
//! `SsmlBreak`, `SsmlEmphasis`, …). Text between elements is a `Text` child.
//!
//! twilio-python writes a string appended right after another string, or as
//! the first child of an element that already has text, in place of the
//! earlier one (ElementTree `text`/`tail` assignment); this builder writes
//! every text piece in order, so the two agree whenever text pieces and
//! elements alternate.

element! {
    /// `<break>`: a pause.
    SsmlBreak = "break";
    fields {}
    attrs {
        /// Set a pause based on strength.
        strength: String => "strength",
        /// Set a pause to a specific length of time in seconds or milliseconds, available values: `[number]s`, `[number]ms`.
        time: String => "time",
    }
}
empty_new!(SsmlBreak);
impl_render!(SsmlBreak);

element! {
    /// `<phoneme>`: pronounces the text with the given phonetic symbols.
    SsmlPhoneme = "phoneme";
    fields { words: String }
    attrs {
        /// Specify the phonetic alphabet.
        alphabet: String => "alphabet",
        /// Specifiy the phonetic symbols for pronunciation.
        ph: String => "ph",
    }
}
text_new!(SsmlPhoneme, words, "the words");
impl_render!(SsmlPhoneme, text: words);

element! {
    /// `<say-as>`: how to read the text (date, digits, …).
    SsmlSayAs = "say-as";
    fields { words: String }
    attrs {
        /// How to read the text (`interpret-as`), e.g. `date`, `telephone`, `characters`.
        interpret_as: String => "interpret-as",
        /// Specify the format of the date when interpret-as is set to date.
        format: String => "format",
    }
}
text_new!(SsmlSayAs, words, "the words");
impl_render!(SsmlSayAs, text: words);

element! {
    /// `<sub>`: reads `alias` instead of the text.
    SsmlSub = "sub";
    fields { words: String }
    attrs {
        /// Substitute a different word (or pronunciation) for selected text such as an acronym or abbreviation.
        alias: String => "alias",
    }
}
text_new!(SsmlSub, words, "the words");
impl_render!(SsmlSub, text: words);

child_enum! {
    /// Any SSML element (what `<Say>`, `<prosody>` and `<lang>` may contain), or text.
    SsmlNode text { SsmlBreak, SsmlEmphasis, SsmlLang, SsmlP, SsmlPhoneme, SsmlProsody, SsmlS, SsmlSayAs, SsmlSub, SsmlW }
}

child_enum! {
    /// What `<p>` may contain: every SSML element but `<p>`, or text.
    SsmlPChild text { SsmlBreak, SsmlEmphasis, SsmlLang, SsmlPhoneme, SsmlProsody, SsmlS, SsmlSayAs, SsmlSub, SsmlW }
}

child_enum! {
    /// What `<s>` and `<emphasis>` may contain: every SSML element but `<p>`
    /// and `<s>`, or text.
    SsmlInline text { SsmlBreak, SsmlEmphasis, SsmlLang, SsmlPhoneme, SsmlProsody, SsmlSayAs, SsmlSub, SsmlW }
}

child_enum! {
    /// What `<w>` may contain: `<break>`, `<emphasis>`, `<phoneme>`,
    /// `<prosody>`, `<say-as>`, `<sub>`, or text.
    SsmlWChild text { SsmlBreak, SsmlEmphasis, SsmlPhoneme, SsmlProsody, SsmlSayAs, SsmlSub }
}

element! {
    /// `<emphasis>`: stressed words.
    SsmlEmphasis = "emphasis";
    fields { words: String, children: Vec<SsmlInline> }
    attrs {
        /// Specify the degree of emphasis.
        level: String => "level",
    }
}
text_new!(SsmlEmphasis, words, "the words");
impl_render!(SsmlEmphasis, text: words, children: children);
children!(SsmlEmphasis.children: SsmlInline {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<lang>`: text in another language.
    SsmlLang = "lang";
    fields { words: String, children: Vec<SsmlNode> }
    attrs {
        /// Language of the text (`xml:lang`), e.g. `fr-FR`.
        xml_lang: String => "xml:lang",
    }
}
text_new!(SsmlLang, words, "the words");
impl_render!(SsmlLang, text: words, children: children);
children!(SsmlLang.children: SsmlNode {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), p(SsmlP), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), s(SsmlS), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<p>`: a paragraph.
    SsmlP = "p";
    fields { words: String, children: Vec<SsmlPChild> }
    attrs {}
}
text_new!(SsmlP, words, "the words");
impl_render!(SsmlP, text: words, children: children);
children!(SsmlP.children: SsmlPChild {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), s(SsmlS), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<prosody>`: volume, rate and pitch of the text.
    SsmlProsody = "prosody";
    fields { words: String, children: Vec<SsmlNode> }
    attrs {
        /// Specify the volume, available values: default, silent, x-soft, soft, medium, loud, x-loud, +ndB, -ndB.
        volume: String => "volume",
        /// Specify the rate, available values: x-slow, slow, medium, fast, x-fast, n%.
        rate: String => "rate",
        /// Specify the pitch, available values: default, x-low, low, medium, high, x-high, +n%, -n%.
        pitch: String => "pitch",
    }
}
text_new!(SsmlProsody, words, "the words");
impl_render!(SsmlProsody, text: words, children: children);
children!(SsmlProsody.children: SsmlNode {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), p(SsmlP), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), s(SsmlS), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<s>`: a sentence.
    SsmlS = "s";
    fields { words: String, children: Vec<SsmlInline> }
    attrs {}
}
text_new!(SsmlS, words, "the words");
impl_render!(SsmlS, text: words, children: children);
children!(SsmlS.children: SsmlInline {
    break_(SsmlBreak), emphasis(SsmlEmphasis), lang(SsmlLang), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), say_as(SsmlSayAs), sub(SsmlSub), w(SsmlW),
});

element! {
    /// `<w>`: a word with a part of speech or meaning (`role`).
    SsmlW = "w";
    fields { words: String, children: Vec<SsmlWChild> }
    attrs {
        /// Customize the pronunciation of words by specifying the word’s part of speech or alternate meaning.
        role: String => "role",
    }
}
text_new!(SsmlW, words, "the words");
impl_render!(SsmlW, text: words, children: children);
children!(SsmlW.children: SsmlWChild {
    break_(SsmlBreak), emphasis(SsmlEmphasis), phoneme(SsmlPhoneme),
    prosody(SsmlProsody), say_as(SsmlSayAs), sub(SsmlSub),
});
