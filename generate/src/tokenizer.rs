//! Gemma's SentencePiece tokenizer, built from the GGUF metadata (`tokenizer.ggml.*`): the
//! file ships no `tokenizer.json`.
//!
//! Encoding, as llama.cpp does it for this vocabulary: user-defined tokens (newline, space and
//! tab runs, HTML tags; stored with real spaces) are split out first, longest token first over
//! the whole text; every other fragment has its spaces replaced by `▁` and is merged
//! symbol by symbol from single characters, always joining the adjacent pair whose
//! concatenation is the normal token with the best score (leftmost on ties); a character with no
//! token of its own falls back to `<0xXX>` byte tokens. Control tokens (`<start_of_turn>`…) are
//! never recognised in text: callers push their ids.
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use candle_core::quantized::gguf_file::{Content, Value};

/// SentencePiece's visible space.
const SPACE: char = '▁';

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the GGUF file has no tokenizer metadata `{0}`")]
    Missing(&'static str),
    #[error("the GGUF tokenizer metadata `{key}` is malformed: {reason}")]
    Malformed { key: &'static str, reason: String },
    #[error("the vocabulary has no `{0}` token")]
    NoToken(&'static str),
}

/// The GGUF token types (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i32) -> Self {
        match v {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
}

/// The special ids a chat prompt needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specials {
    pub bos: u32,
    pub eos: u32,
    pub start_of_turn: u32,
    pub end_of_turn: u32,
}

pub struct Tokenizer {
    pieces: Vec<String>,
    kinds: Vec<TokenKind>,
    scores: Vec<f32>,
    /// Normal tokens by text: what merging may produce.
    normal: HashMap<String, u32>,
    /// User-defined tokens, longest first (ties by id, for a stable order).
    user_defined: Vec<(String, u32)>,
    /// `<0xXX>` token of each byte.
    byte_token: [Option<u32>; 256],
    pub specials: Specials,
    pub add_bos: bool,
}

impl Tokenizer {
    /// Reads the vocabulary from GGUF metadata.
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let md = &content.metadata;
        let array = |key: &'static str| -> Result<&Vec<Value>, TokenizerError> {
            md.get(key)
                .ok_or(TokenizerError::Missing(key))?
                .to_vec()
                .map_err(|e| TokenizerError::Malformed {
                    key,
                    reason: e.to_string(),
                })
        };
        let bad = |key: &'static str, e: candle_core::Error| TokenizerError::Malformed {
            key,
            reason: e.to_string(),
        };
        let pieces: Vec<String> = array("tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<Result<_, _>>()
            .map_err(|e| bad("tokenizer.ggml.tokens", e))?;
        let scores: Vec<f32> = array("tokenizer.ggml.scores")?
            .iter()
            .map(Value::to_f32)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("tokenizer.ggml.scores", e))?;
        let kinds: Vec<TokenKind> = array("tokenizer.ggml.token_type")?
            .iter()
            .map(|v| v.to_i32().map(TokenKind::from_gguf))
            .collect::<Result<_, _>>()
            .map_err(|e| bad("tokenizer.ggml.token_type", e))?;
        if scores.len() != pieces.len() || kinds.len() != pieces.len() {
            return Err(TokenizerError::Malformed {
                key: "tokenizer.ggml.scores",
                reason: format!(
                    "{} tokens, {} scores, {} types",
                    pieces.len(),
                    scores.len(),
                    kinds.len()
                ),
            });
        }
        let id_of = |key: &'static str| -> Result<u32, TokenizerError> {
            md.get(key)
                .ok_or(TokenizerError::Missing(key))?
                .to_u32()
                .map_err(|e| bad(key, e))
        };
        let bos = id_of("tokenizer.ggml.bos_token_id")?;
        let eos = id_of("tokenizer.ggml.eos_token_id")?;
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(true);

        let mut normal = HashMap::new();
        let mut user_defined = Vec::new();
        let mut byte_token = [None; 256];
        for (id, (piece, kind)) in pieces.iter().zip(&kinds).enumerate() {
            let id = id as u32;
            match kind {
                TokenKind::Normal => {
                    normal.entry(piece.clone()).or_insert(id);
                }
                TokenKind::UserDefined if !piece.is_empty() => {
                    user_defined.push((piece.clone(), id));
                }
                TokenKind::Byte => {
                    if let Some(b) = parse_byte_piece(piece) {
                        byte_token[b as usize] = Some(id);
                    }
                }
                _ => {}
            }
        }
        user_defined.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let control = |text: &'static str| -> Result<u32, TokenizerError> {
            pieces
                .iter()
                .position(|p| p == text)
                .map(|i| i as u32)
                .ok_or(TokenizerError::NoToken(text))
        };
        let specials = Specials {
            bos,
            eos,
            start_of_turn: control("<start_of_turn>")?,
            end_of_turn: control("<end_of_turn>")?,
        };
        Ok(Tokenizer {
            pieces,
            kinds,
            scores,
            normal,
            user_defined,
            byte_token,
            specials,
            add_bos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Token ids of plain text (no BOS; control-token strings are text like any other).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        for frag in self.split_user_defined(text) {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(t) => self.encode_fragment(t, &mut out),
            }
        }
        out
    }

    /// Splits out user-defined tokens, longest token first over the whole text.
    fn split_user_defined<'t>(&self, text: &'t str) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        for (piece, id) in &self.user_defined {
            if !text.contains(piece.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut t) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = t.find(piece.as_str()) {
                    if at > 0 {
                        next.push(Fragment::Text(&t[..at]));
                    }
                    next.push(Fragment::Token(*id));
                    t = &t[at + piece.len()..];
                }
                if !t.is_empty() {
                    next.push(Fragment::Text(t));
                }
            }
            frags = next;
        }
        frags
    }

    /// SentencePiece BPE by score over one fragment without user-defined tokens.
    fn encode_fragment(&self, text: &str, out: &mut Vec<u32>) {
        let text: String = text
            .chars()
            .map(|c| if c == ' ' { SPACE } else { c })
            .collect();
        // Symbols are byte ranges of `text` in a linked list; a merged-away symbol has len 0.
        let mut syms: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (at, c)) in text.char_indices().enumerate() {
            syms.push(Symbol {
                start: at,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: Some(i + 1),
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Pair>, syms: &[Symbol], l: usize, r: usize| {
            let (a, b) = (&syms[l], &syms[r]);
            let joined = &text[a.start..b.start + b.len];
            if let Some(&id) = self.normal.get(joined) {
                heap.push(Pair {
                    score: self.scores[id as usize],
                    left: l,
                    right: r,
                    size: joined.len(),
                });
            }
        };
        for i in 1..syms.len() {
            push(&mut heap, &syms, i - 1, i);
        }
        while let Some(p) = heap.pop() {
            let (l, r) = (&syms[p.left], &syms[p.right]);
            // Stale: one side was merged into something else since this pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != p.size {
                continue;
            }
            let right_next = r.next;
            syms[p.left].len = p.size;
            syms[p.left].next = right_next;
            syms[p.right].len = 0;
            if let Some(n) = right_next {
                syms[n].prev = Some(p.left);
            }
            if let Some(pv) = syms[p.left].prev {
                push(&mut heap, &syms, pv, p.left);
            }
            if let Some(n) = right_next {
                push(&mut heap, &syms, p.left, n);
            }
        }
        let mut at = if syms.is_empty() { None } else { Some(0) };
        while let Some(i) = at {
            let s = &syms[i];
            let piece = &text[s.start..s.start + s.len];
            match self.normal.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_token[b as usize] {
                            out.push(id);
                        }
                    }
                }
            }
            at = s.next;
        }
    }

    /// The bytes a token stands for in output text: control and unused tokens stand for
    /// nothing, byte tokens for their byte, `▁` for a space.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let i = id as usize;
        match self.kinds.get(i) {
            None | Some(TokenKind::Control | TokenKind::Unused | TokenKind::Unknown) => Vec::new(),
            Some(TokenKind::Byte) => parse_byte_piece(&self.pieces[i])
                .map(|b| vec![b])
                .unwrap_or_default(),
            Some(_) => self.pieces[i].replace(SPACE, " ").into_bytes(),
        }
    }

    /// Text of a token sequence (invalid UTF-8 from stray byte tokens is replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The stored piece of a token, as in the vocabulary.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }
}

/// Turns streamed token ids into text pieces on UTF-8 boundaries: a character split across
/// byte tokens is held back until it is complete.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Text ready after `id` (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending.extend(tok.token_bytes(id));
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_string();
                self.pending.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: emit what is before it.
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                s
            }
        }
    }

    /// Whatever is left (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A mergeable adjacent pair; the heap pops the best score, then the leftmost.
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pair {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// `<0x41>` → 0x41.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_pieces_parse() {
        assert_eq!(parse_byte_piece("<0x0A>"), Some(10));
        assert_eq!(parse_byte_piece("<0xFF>"), Some(255));
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
        assert_eq!(parse_byte_piece("hello"), None);
    }

    #[test]
    fn pairs_pop_best_score_then_leftmost() {
        let mut h = BinaryHeap::new();
        for (score, left) in [(-5.0, 0), (-1.0, 4), (-1.0, 2), (-3.0, 1)] {
            h.push(Pair {
                score,
                left,
                right: left + 1,
                size: 2,
            });
        }
        let order: Vec<usize> = std::iter::from_fn(|| h.pop().map(|p| p.left)).collect();
        assert_eq!(order, [2, 4, 1, 0]);
    }
}
