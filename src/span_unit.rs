//! An answer span made a whole unit of its passage: never cut inside a word, a parenthesis or
//! a phrase that the token budget ended early; never a list marker; a number keeps its unit and
//! what it counts. Also finds the sentence the span was copied from, the one shown as support.
//!
//! The constrained decoder copies tokens, and a sub-word token boundary or the span budget can
//! end a copy anywhere ("…capacity in DS. Lec", "prostaglandin (PG"): the span is mapped back to
//! its characters in the passage and its edges moved to the unit's edges.

/// Words a phrase does not end on: a span ending on one was cut before its head noun.
const DANGLING: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "with",
    "by",
    "from",
    "and",
    "or",
    "as",
    "than",
    "between",
    "versus",
    "vs",
    "into",
    "per",
    "its",
    "their",
    "his",
    "her",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "that",
    "which",
    "who",
    "not",
    "no",
    "both",
    "either",
    "each",
    "this",
    "these",
    "those",
    "mean",
    "median",
    "about",
    "approximately",
    "nearly",
    "over",
    "under",
    "up",
];

/// Words a number's count is stated in ("82 patients", "3 weeks", "5 mg/kg").
const UNITS: &[&str] = &[
    "patients",
    "participants",
    "subjects",
    "children",
    "adults",
    "women",
    "men",
    "people",
    "cases",
    "mice",
    "rats",
    "animals",
    "dogs",
    "cells",
    "infants",
    "volunteers",
    "individuals",
    "years",
    "months",
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "h",
    "min",
    "s",
    "mg",
    "g",
    "kg",
    "µg",
    "ug",
    "ng",
    "mcg",
    "ml",
    "l",
    "mmol",
    "µmol",
    "nmol",
    "mm",
    "cm",
    "m",
    "mmhg",
    "iu",
    "units",
    "times",
    "fold",
    "percent",
    "bp",
    "kb",
    "kda",
    "da",
];

/// Words a phrase cut by the budget may be extended by, at most.
const MAX_EXTENSION_WORDS: usize = 6;
/// Characters an unclosed parenthesis may be closed within.
const MAX_PAREN_REACH: usize = 80;

/// The span as a whole unit of its passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub text: String,
    /// The passage sentence holding the unit's start.
    pub sentence: String,
}

/// `span` (decoded text copied from `passage`) widened or trimmed to whole units; `cut` says
/// that the token budget, not the model, ended it. `None` when nothing whole remains (a bare
/// list marker) or the span is not found in the passage.
pub fn whole_unit(passage: &str, span: &str, cut: bool) -> Option<Unit> {
    let span = span.trim();
    if span.is_empty() {
        return None;
    }
    let (mut a, mut b) = find(passage, span)?;
    let word_char = |i: usize| {
        passage[i..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
    };
    let prev_word_char = |i: usize| {
        i > 0
            && passage[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    };
    // Inside a word at either edge: widen to the word.
    while prev_word_char(a) && word_char(a) {
        a = prev_char(passage, a);
    }
    while b < passage.len() && prev_word_char(b) && word_char(b) {
        b = next_char(passage, b);
    }
    // A number's unit glued to it ("44.9%", "5mg") or decimals the copy stopped inside.
    if b < passage.len() && passage[..b].ends_with(|c: char| c.is_ascii_digit()) {
        let rest = &passage[b..];
        if let Some(r) = rest
            .strip_prefix(['.', ','])
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        {
            b += 1 + r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        }
        if passage[b..].starts_with('%') {
            b += 1;
        }
    }
    // A leading list marker ("1.", "(ii)", "b)") or punctuation is not part of the answer.
    a = skip_marker(passage, a);
    while a < b
        && !passage[a..].starts_with(|c: char| {
            c.is_alphanumeric()
                || "('\"‘“".contains(c)
                || c == '≥'
                || c == '≤'
                || c == '<'
                || c == '>'
                || c == '-'
                || c == '+'
                || c == '±'
        })
    {
        a = next_char(passage, a);
    }
    if a >= b {
        return None;
    }
    // A span never runs past its sentence: the budget ran the copy on into the next one.
    let mut ended = false;
    if let Some(end) = passage[a..b]
        .char_indices()
        .find(|&(i, c)| ends_sentence(passage, a + i, c))
        .map(|(i, _)| a + i)
    {
        b = end;
        ended = true;
    }
    // A phrase the budget ended, or one ending on a word that needs its head: extend to the
    // phrase's end (a clause mark or the sentence end), within a few words.
    let dangling = |b: usize| {
        last_word(&passage[a..b]).is_some_and(|w| DANGLING.contains(&w.to_lowercase().as_str()))
    };
    if (cut && !ended) || dangling(b) {
        if let Some(end) = phrase_end(passage, b) {
            b = end;
        } else if dangling(b) {
            // No end within reach: drop the dangling words instead.
            while dangling(b) {
                let t = passage[a..b].trim_end();
                let Some(i) = t.rfind(' ') else { break };
                b = a + t[..i].trim_end().len();
            }
        }
    }
    // A number with what it counts: "82" → "82 patients".
    if passage[..b].ends_with(|c: char| c.is_ascii_digit() || c == '%') {
        let rest = &passage[b..];
        let next = rest.trim_start();
        let word: String = next
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '/' || *c == 'µ')
            .collect();
        let base = word.split('/').next().unwrap_or("").to_lowercase();
        if !word.is_empty() && rest.len() - next.len() <= 1 && UNITS.contains(&base.as_str()) {
            b += rest.len() - next.len() + word.len();
        }
    }
    // An unclosed parenthesis: close it within reach, else end before it.
    let text = &passage[a..b];
    if text.matches('(').count() > text.matches(')').count() {
        let reach = &passage[b..passage.len().min(b + MAX_PAREN_REACH)];
        match reach.find(')').filter(|&i| !reach[..i].contains('(')) {
            Some(i) if !reach[..i].contains(". ") => b += i + 1,
            _ => {
                let open = a + text.rfind('(').unwrap_or(0);
                b = a + passage[a..open].trim_end().len();
            }
        }
    } else if text.matches(')').count() > text.matches('(').count() && text.ends_with(')') {
        b -= 1;
    }
    // Trailing punctuation of the sentence or clause is not part of the answer.
    let trimmed = passage[a..b].trim_end_matches([',', ';', ':', '.', ' ', '[', '(']);
    let b = a + trimmed.len();
    if a >= b || !passage[a..b].chars().any(char::is_alphanumeric) {
        return None;
    }
    Some(Unit {
        text: passage[a..b].to_string(),
        sentence: sentence_at(passage, a).to_string(),
    })
}

/// Byte range of `span` in `passage`: exactly, else ignoring case and runs of whitespace
/// (a decoded span may differ from the passage in spacing).
fn find(passage: &str, span: &str) -> Option<(usize, usize)> {
    if let Some(i) = passage.find(span) {
        return Some((i, i + span.len()));
    }
    let words: Vec<&str> = span.split_whitespace().collect();
    let first = words.first()?;
    let lower = passage.to_lowercase();
    if lower.len() != passage.len() {
        return None;
    }
    let first_lower = first.to_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&first_lower) {
        let at = from + i;
        let mut pos = at;
        let ok = words.iter().all(|w| {
            let rest = &lower[pos..];
            let skipped = rest.len() - rest.trim_start().len();
            let rest = rest.trim_start();
            if rest.starts_with(&w.to_lowercase()) {
                pos += skipped + w.len();
                true
            } else {
                false
            }
        });
        // Offsets in the lower-cased copy are the passage's only where both are char
        // boundaries there (lower-casing kept the length overall, not per character).
        if ok && passage.is_char_boundary(at) && passage.is_char_boundary(pos) {
            return Some((at, pos));
        }
        from = at + first_lower.len().max(1);
    }
    None
}

fn prev_char(s: &str, i: usize) -> usize {
    s[..i].char_indices().next_back().map_or(0, |(j, _)| j)
}

fn next_char(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(s.len(), |c| i + c.len_utf8())
}

fn last_word(s: &str) -> Option<&str> {
    s.split(|c: char| !c.is_alphanumeric())
        .rfind(|w| !w.is_empty())
}

/// After a list marker at `a` ("1. ", "(2) ", "iii) ", "a. "), where its text starts (`b` or
/// past it when the span is the marker alone).
fn skip_marker(passage: &str, a: usize) -> usize {
    let s = &passage[a..];
    let inner = s.strip_prefix('(').unwrap_or(s);
    let token: String = inner.chars().take_while(|c| c.is_alphanumeric()).collect();
    let roman = !token.is_empty() && token.chars().all(|c| "ivx".contains(c)) && token.len() <= 4;
    let marker = !token.is_empty()
        && (token.chars().all(|c| c.is_ascii_digit()) && token.len() <= 2
            || roman
            || token.len() == 1 && token.chars().all(|c| c.is_ascii_lowercase()));
    if !marker {
        return a;
    }
    let after = &inner[token.len()..];
    let Some(rest) = after.strip_prefix([')', '.']) else {
        return a;
    };
    // "1.5" is a number, not a marker; a marker is followed by a space.
    if !rest.starts_with(' ') {
        return a;
    }
    a + (s.len() - rest.trim_start().len())
}

/// The end of the phrase around `b`: the next clause mark or sentence end within a few words.
fn phrase_end(passage: &str, b: usize) -> Option<usize> {
    let rest = &passage[b..];
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in rest.char_indices() {
        if matches!(c, ',' | ';' | ':' | '(' | ')' | '[' | ']')
            || c == '.' && rest[i + 1..].chars().next().is_none_or(char::is_whitespace)
        {
            return Some(b + i);
        }
        if c.is_whitespace() {
            if in_word {
                words += 1;
                if words > MAX_EXTENSION_WORDS {
                    return None;
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    Some(passage.len())
}

/// Whether the `.`, `!` or `?` at byte `i` ends a sentence: a space and a capital or digit
/// follow, and it does not close an abbreviation ("e.g.", "vs.", "et al.").
fn ends_sentence(passage: &str, i: usize, c: char) -> bool {
    matches!(c, '.' | '!' | '?')
        && passage[i + 1..].starts_with(' ')
        && passage[i + 1..]
            .trim_start()
            .starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit())
        && !passage[..i].rsplit(' ').next().is_some_and(|w| {
            let w = w.trim_start_matches(|c: char| !c.is_alphanumeric());
            matches!(
                w,
                "e.g" | "i.e" | "vs" | "al" | "Fig" | "approx" | "ca" | "no" | "No"
            )
        })
}

/// The sentences of `passage`, in order.
pub fn sentences(passage: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in passage.char_indices() {
        if ends_sentence(passage, i, c) {
            out.push(passage[start..=i].trim());
            start = i + 1;
        }
    }
    out.push(passage[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The sentence of `passage` that holds byte `at`.
pub fn sentence_at(passage: &str, at: usize) -> &str {
    let ends = |i: usize, c: char| ends_sentence(passage, i, c);
    let start = passage[..at]
        .char_indices()
        .rev()
        .find(|&(i, c)| ends(i, c))
        .map_or(0, |(i, _)| i + 1);
    let end = passage[at..]
        .char_indices()
        .find(|&(i, c)| ends(at + i, c))
        .map_or(passage.len(), |(i, _)| at + i + 1);
    passage[start..end].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(passage: &str, span: &str, cut: bool) -> String {
        whole_unit(passage, span, cut)
            .map(|u| u.text)
            .unwrap_or_default()
    }

    #[test]
    fn a_word_cut_by_the_budget_is_completed_or_its_phrase_ended() {
        let p = "Exercise may preserve cognitive capacity in DS. Lecithin had no effect.";
        assert_eq!(
            unit(p, "preserve cognitive capacity in DS. Lec", true),
            "preserve cognitive capacity in DS"
        );
        assert_eq!(unit(p, "cognitive capa", false), "cognitive capacity");
        assert_eq!(unit(p, "ognitive capacity", false), "cognitive capacity");
    }

    #[test]
    fn list_markers_and_unclosed_parentheses_go() {
        let p = "1. We have compared the effects of diflunisal on prostaglandin (PG) synthesis.";
        assert_eq!(unit(p, "1. We have compared", false), "We have compared");
        assert_eq!(unit(p, "prostaglandin (PG", false), "prostaglandin (PG)");
        let far = format!("aspirin (given {} daily) helped.", "twice ".repeat(20));
        assert_eq!(unit(&far, "aspirin (given", false), "aspirin");
        // A number is not a list marker.
        assert_eq!(
            unit("Doses of 1.5 mg were used.", "1.5 mg", false),
            "1.5 mg"
        );
    }

    #[test]
    fn a_number_keeps_its_unit_and_what_it_counts() {
        let p = "Of 164 patients, 82 patients were randomised to ivermectin; 44.9% had CT.";
        assert_eq!(unit(p, "82", false), "82 patients");
        assert_eq!(unit(p, "44", false), "44.9%");
        assert_eq!(unit(p, "44.9", false), "44.9%");
    }

    #[test]
    fn a_phrase_ending_on_a_function_word_gets_its_head() {
        let p = "The drug reduced the rates of mortality and morbidity, as expected.";
        assert_eq!(
            unit(p, "rates of", false),
            "rates of mortality and morbidity"
        );
        let long = "The rates of a very long list of many things that never ends here now";
        assert_eq!(unit(long, "The rates of", false), "The rates");
    }

    #[test]
    fn the_supporting_sentence_is_the_one_copied_from() {
        let p =
            "Mice were infected. Rifampin cured them (e.g. Smith). Tetracycline left 70% infected.";
        let u = whole_unit(p, "Tetracycline", false).expect("found");
        assert_eq!(u.sentence, "Tetracycline left 70% infected.");
        let u = whole_unit(p, "cured", false).expect("found");
        assert_eq!(u.sentence, "Rifampin cured them (e.g. Smith).");
    }

    #[test]
    fn spacing_differences_are_found_and_unknown_spans_are_not() {
        let p = "Serum  Interleukin-6 rose.";
        assert_eq!(
            unit(p, "serum interleukin-6", false),
            "Serum  Interleukin-6"
        );
        assert!(whole_unit(p, "tumour necrosis", false).is_none());
        assert!(whole_unit("1. Results", "1.", false).is_none());
        // Lower-casing that changes byte lengths (K, the Kelvin sign, is 3 bytes; k is 1)
        // but not the total: no slice off a char boundary.
        let odd = "\u{212A}ab ß Serum";
        let _ = whole_unit(odd, "SERUM", false);
        let _ = whole_unit(odd, "kab", false);
    }
}
