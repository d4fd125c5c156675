//! Answer-span extraction: decoding constrained to copy a contiguous run of evidence tokens.
//!
//! A 270M pretrained model answers factoid questions poorly in free text but ranks evidence
//! words well. Restricting each step to the tokens that continue some run of a passage (or
//! to stopping) makes every answer a verbatim evidence span, so it can always be traced to
//! the passage it came from.

/// Which token sequences the answer may still be inside, and where.
#[derive(Debug, Clone)]
pub struct SpanConstraint {
    passages: Vec<Vec<u32>>,
    /// (passage, start) of every run equal to the tokens chosen so far.
    live: Vec<(usize, usize)>,
    len: usize,
}

impl SpanConstraint {
    pub fn new(passages: Vec<Vec<u32>>) -> Self {
        let live = passages
            .iter()
            .enumerate()
            .flat_map(|(p, ids)| (0..ids.len()).map(move |i| (p, i)))
            .collect();
        SpanConstraint {
            passages,
            live,
            len: 0,
        }
    }

    /// Tokens that keep the answer a copy of some passage run, without repeats.
    pub fn allowed(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .live
            .iter()
            .filter_map(|&(p, i)| self.passages[p].get(i + self.len).copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Extends the answer by `token`; false (and no change) when no passage run continues so.
    pub fn push(&mut self, token: u32) -> bool {
        let len = self.len;
        let next: Vec<(usize, usize)> = self
            .live
            .iter()
            .copied()
            .filter(|&(p, i)| self.passages[p].get(i + len) == Some(&token))
            .collect();
        if next.is_empty() {
            return false;
        }
        self.live = next;
        self.len += 1;
        true
    }

    /// Tokens chosen so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first passage (in the order given, i.e. by rank) that holds the answer.
    pub fn source(&self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.live.iter().map(|&(p, _)| p).min()
    }
}

/// `log softmax(logits)[token]`, computed stably.
pub fn log_probability(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f32::NEG_INFINITY;
    }
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |&l| l - max - sum.ln())
}

/// The best of `allowed` and `stops` under `logits`, and whether it is a stop.
pub fn best_choice(logits: &[f32], allowed: &[u32], stops: &[u32]) -> Option<(u32, bool)> {
    let score = |t: u32| logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
    let best_go = allowed
        .iter()
        .copied()
        .max_by(|a, b| score(*a).total_cmp(&score(*b)));
    let best_stop = stops
        .iter()
        .copied()
        .max_by(|a, b| score(*a).total_cmp(&score(*b)));
    match (best_go, best_stop) {
        (Some(g), Some(s)) if score(s) > score(g) => Some((s, true)),
        (Some(g), _) => Some((g, false)),
        (None, Some(s)) => Some((s, true)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_continuations_of_passage_runs_are_allowed() {
        let mut c = SpanConstraint::new(vec![vec![1, 2, 3, 4], vec![9, 2, 3, 7]]);
        assert_eq!(c.allowed(), vec![1, 2, 3, 4, 7, 9]);
        assert!(c.push(2));
        assert_eq!(c.allowed(), vec![3]);
        assert!(c.push(3));
        assert_eq!(c.allowed(), vec![4, 7]);
        assert_eq!(
            c.source(),
            Some(0),
            "both passages hold [2 3]; the first ranks higher"
        );
        assert!(c.push(7));
        assert_eq!(c.source(), Some(1));
        assert!(c.allowed().is_empty(), "passage 1 ends after 7");
        assert!(!c.push(4), "4 does not follow [2 3 7] anywhere");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_token_not_in_any_passage_cannot_start_the_answer() {
        let mut c = SpanConstraint::new(vec![vec![5, 6]]);
        assert!(!c.push(7));
        assert!(c.is_empty());
        assert_eq!(c.source(), None);
    }

    #[test]
    fn stopping_wins_only_when_the_model_prefers_it() {
        let logits = [0.0, 5.0, 1.0, 9.0, 2.0];
        assert_eq!(best_choice(&logits, &[1, 2], &[4]), Some((1, false)));
        assert_eq!(best_choice(&logits, &[2], &[3, 4]), Some((3, true)));
        assert_eq!(best_choice(&logits, &[], &[4]), Some((4, true)));
        assert_eq!(best_choice(&logits, &[], &[]), None);
    }
}
