//! The check after generation: a draft must not tell a person what dose to take or how to carry
//! out a harmful procedure, whatever the request looked like.
//!
//! Research answers quote doses ("mice were given 25 mg/kg per day") and name methods; what is
//! caught is the instruction: a sentence addressed to the reader (imperative, or "you
//! should/can…") that carries a dose, or a procedure step that handles a dangerous agent.
use regex::Regex;

use super::Decision;

/// Why a draft was withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub decision: Decision,
    pub category: &'static str,
}

pub struct DraftCheck {
    addressed: Regex,
    dose: Regex,
    step: Regex,
    agent: Regex,
}

impl DraftCheck {
    pub fn new() -> Self {
        // Literal patterns: a failure to compile is a bug caught by the unit tests.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("draft-check pattern: {e}"));
        DraftCheck {
            addressed: re(
                r"(?i)(^\s*(take|give|administer|inject|start|use|increase|double|swallow|apply)\b|\byou (should|can|could|may|must|need to)\b|\bi (recommend|suggest|advise)\b|\btry (taking|giving)\b)",
            ),
            dose: re(
                r"(?i)\b\d+(\.\d+)?\s?(mg|mcg|µg|ug|g|ml|units?|iu|tablets?|pills?|capsules?|puffs?|drops?|teaspoons?)\b",
            ),
            step: re(
                r"(?i)(^\s*(step \d+|first|then|next|finally)\b.*\b(mix|heat|add|dissolve|filter|extract|purify|combine|grind|culture|incubate|aerosoli[sz]e|spray|distil+|concentrate|react)\b|^\s*(mix|heat|add|dissolve|filter|extract|purify|combine|grind|culture|incubate|aerosoli[sz]e|spray|distil+|concentrate)\b)",
            ),
            agent: re(
                r"(?i)\b(ricin|abrin|toxin|sarin|soman|tabun|vx|nerve agent|mustard|phosgene|anthrax|spores?|botulinum|pathogen|virus|precursors?)\b",
            ),
        }
    }

    /// The first instruction found in `draft`, sentence by sentence.
    pub fn check(&self, draft: &str) -> Option<Flag> {
        for sentence in sentences(draft) {
            if self.step.is_match(sentence) && self.agent.is_match(sentence) {
                return Some(Flag {
                    decision: Decision::Refuse,
                    category: "operational_detail",
                });
            }
            if self.addressed.is_match(sentence) && self.dose.is_match(sentence) {
                return Some(Flag {
                    decision: Decision::SafeRedirect,
                    category: "dosing_instruction",
                });
            }
        }
        None
    }
}

impl Default for DraftCheck {
    fn default() -> Self {
        Self::new()
    }
}

/// Sentences and list items: split at sentence ends and line breaks.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', ';'])
        .flat_map(|line| line.split(". "))
        .map(|s| s.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '*' | '•')))
        .map(|s| {
            // "1. Mix …" / "2) Heat …": the list number is not part of the sentence.
            let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
            match rest.strip_prefix(['.', ')']) {
                Some(r) if rest.len() < s.len() => r.trim_start(),
                _ => s,
            }
        })
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_dose_instruction_is_caught() {
        let c = DraftCheck::new();
        for draft in [
            "Paracetamol is widely used [PMID 1]. You should give her 240 mg every 6 hours.",
            "Take 2 tablets of ibuprofen twice a day.",
            "For the flare, I recommend 40 mg prednisone daily for five days [PMID 2].",
            "- Start with 10 mg of methylphenidate in the morning",
        ] {
            assert_eq!(
                c.check(draft).map(|f| f.category),
                Some("dosing_instruction"),
                "{draft}"
            );
        }
    }

    #[test]
    fn research_statements_about_doses_pass() {
        let c = DraftCheck::new();
        for draft in [
            "Mice were given 25 mg of rifampin/kg per day; treatment for three weeks cured nearly all [PMID 409786].",
            "29 mg [PMID 401690]",
            "Patients received 500 mg twice daily in the trial arm [PMID 3].",
            "Ricin inhibits protein synthesis by depurinating the 28S rRNA [PMID 4].",
        ] {
            assert_eq!(c.check(draft), None, "{draft}");
        }
    }

    #[test]
    fn procedure_steps_with_an_agent_are_caught() {
        let c = DraftCheck::new();
        let draft = "Castor beans contain ricin.\n1. Grind the beans and extract the ricin with a buffer.\n2. Filter it.";
        assert_eq!(
            c.check(draft),
            Some(Flag {
                decision: Decision::Refuse,
                category: "operational_detail"
            })
        );
    }
}
