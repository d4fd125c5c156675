//! What the model reads of each retrieved article. Dense retrieval returns an article's best
//! passage, which can leave out the sentence holding the answer (on dev_qa, hybrid evidence
//! found 4 fewer answers than BM25's whole abstracts); so each article is widened to its whole
//! abstract when that fits its share of the prompt, else to the best passage with as many
//! neighbouring sentences as fit.
use crate::prompt::Evidence;
use crate::span_unit::sentences;

/// Tokens of an evidence block's header besides its title: `[PMID n]`, journal and year.
const HEADER_TOKENS: usize = 24;

/// `passage` (sentences of `abstract_text`) widened within `budget` tokens as `count` counts
/// them: the whole abstract when it fits, else the passage's sentences and their neighbours,
/// taken alternately after and before it. The passage itself when it is not found there.
pub fn widen(
    abstract_text: &str,
    passage: &str,
    budget: usize,
    count: &mut dyn FnMut(&str) -> usize,
) -> String {
    if abstract_text.trim().is_empty() || count(abstract_text) <= budget {
        return if abstract_text.trim().is_empty() {
            passage.to_string()
        } else {
            abstract_text.to_string()
        };
    }
    let all = sentences(abstract_text);
    let inside = sentences(passage);
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return passage.to_string();
    };
    let Some(lo) = all.iter().position(|s| s == first) else {
        return passage.to_string();
    };
    let Some(hi) = all[lo..].iter().position(|s| s == last).map(|i| lo + i) else {
        return passage.to_string();
    };
    let (mut lo, mut hi) = (lo, hi);
    let mut text = all[lo..=hi].join(" ");
    loop {
        let mut grew = false;
        if hi + 1 < all.len() {
            let wider = all[lo..=hi + 1].join(" ");
            if count(&wider) <= budget {
                hi += 1;
                text = wider;
                grew = true;
            }
        }
        if lo > 0 {
            let wider = all[lo - 1..=hi].join(" ");
            if count(&wider) <= budget {
                lo -= 1;
                text = wider;
                grew = true;
            }
        }
        if !grew {
            return text;
        }
    }
}

/// Each passage of `evidence` whose article's abstract `abstract_of` gives, widened by
/// [`widen`] to an equal share of `budget` tokens.
pub fn widen_all(
    evidence: &mut [Evidence],
    budget: usize,
    abstract_of: &mut dyn FnMut(u64) -> Option<String>,
    count: &mut dyn FnMut(&str) -> usize,
) {
    if evidence.is_empty() {
        return;
    }
    let share = budget / evidence.len();
    for e in evidence.iter_mut() {
        if let Some(full) = abstract_of(e.pmid) {
            if full != e.text {
                // The block's header (PMID, title, journal, year) takes its part of the share.
                let room = share.saturating_sub(count(&e.title) + HEADER_TOKENS);
                e.text = widen(&full, &e.text, room, count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    const ABSTRACT: &str = "Background one two. Methods three four. Results five six. \
                            Conclusion seven eight.";

    #[test]
    fn the_whole_abstract_when_it_fits() {
        let got = widen(ABSTRACT, "Results five six.", 100, &mut words);
        assert_eq!(got, ABSTRACT);
    }

    #[test]
    fn else_the_passage_and_its_neighbours_within_the_budget() {
        // 3 words a sentence: 9 words take the passage and one neighbour each side.
        let got = widen(
            ABSTRACT,
            "Methods three four. Results five six.",
            9,
            &mut words,
        );
        assert_eq!(
            got,
            "Methods three four. Results five six. Conclusion seven eight."
        );
        let got = widen(ABSTRACT, "Results five six.", 3, &mut words);
        assert_eq!(got, "Results five six.");
        // A passage not in the abstract (an index older than its record) stays as it is.
        assert_eq!(widen(ABSTRACT, "Other text.", 3, &mut words), "Other text.");
    }
}
