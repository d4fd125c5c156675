//! Folding a request before the rules read it: lower case, look-alike letters to ASCII,
//! invisible characters removed, runs of spaces collapsed.
//!
//! Rules are written against plain ASCII; without folding, "rіcin" with a Cyrillic `і` or
//! "r\u{200b}icin" with a zero-width space would pass them untouched.

/// Letters from other scripts that render like Latin ones, and typographic punctuation.
const LOOK_ALIKES: &[(char, char)] = &[
    // Cyrillic
    ('а', 'a'),
    ('в', 'b'),
    ('с', 'c'),
    ('ԁ', 'd'),
    ('е', 'e'),
    ('ё', 'e'),
    ('һ', 'h'),
    ('і', 'i'),
    ('ї', 'i'),
    ('ј', 'j'),
    ('к', 'k'),
    ('м', 'm'),
    ('н', 'h'),
    ('о', 'o'),
    ('р', 'p'),
    ('ԛ', 'q'),
    ('ѕ', 's'),
    ('т', 't'),
    ('у', 'y'),
    ('х', 'x'),
    ('ү', 'y'),
    // Greek
    ('α', 'a'),
    ('β', 'b'),
    ('ε', 'e'),
    ('η', 'n'),
    ('ι', 'i'),
    ('κ', 'k'),
    ('ν', 'v'),
    ('ο', 'o'),
    ('ρ', 'p'),
    ('τ', 't'),
    ('υ', 'u'),
    ('χ', 'x'),
    // Latin variants
    ('ı', 'i'),
    ('ɑ', 'a'),
    ('ɡ', 'g'),
    ('ℓ', 'l'),
    // Punctuation
    ('\u{2018}', '\''),
    ('\u{2019}', '\''),
    ('\u{02bc}', '\''),
    ('\u{201c}', '"'),
    ('\u{201d}', '"'),
    ('\u{2010}', '-'),
    ('\u{2011}', '-'),
    ('\u{2013}', '-'),
    ('\u{2014}', '-'),
];

/// Characters that render as nothing and can be slipped inside a word.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}' | '\u{034f}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

/// The folded text: what the rules match against.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        if invisible(c) {
            continue;
        }
        let c = match c {
            // Full-width ASCII (U+FF01..U+FF5E) to ASCII.
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            _ => c,
        };
        for l in c.to_lowercase() {
            let l = LOOK_ALIKES
                .iter()
                .find(|(from, _)| *from == l)
                .map_or(l, |&(_, to)| to);
            if l.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.push(l);
                space = false;
            }
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn look_alikes_and_invisible_characters_fold_to_ascii() {
        // Cyrillic і and о, a zero-width space, a soft hyphen, full-width letters.
        assert_eq!(fold("Make r\u{0456}c\u{200b}in"), "make ricin");
        assert_eq!(fold("V\u{00ad}X  nerve\tаgent"), "vx nerve agent");
        assert_eq!(fold("ＲＩＣＩＮ"), "ricin");
        assert_eq!(fold("so I don\u{2019}t wake up"), "so i don't wake up");
    }

    #[test]
    fn ordinary_text_is_only_lower_cased() {
        assert_eq!(
            fold("How does Cholera toxin act?"),
            "how does cholera toxin act?"
        );
    }
}
