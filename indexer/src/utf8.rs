//! A reader that turns its input into valid UTF-8 and remembers where it had to.
//!
//! The XML reader stops for good at the first invalid byte, which would fail a whole file for
//! one bad abstract. Instead, each invalid sequence becomes U+FFFD here and its output offset is
//! recorded; the parser then skips just the record that contains it.
use std::io::{self, BufRead, Read};

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Passes valid UTF-8 straight through from the inner buffer (no copy); only an invalid or
/// buffer-straddling sequence goes through a small side buffer.
pub struct Utf8Sanitizer<R> {
    inner: R,
    /// Bytes at the start of the inner buffer already known to be valid.
    validated: usize,
    /// A replacement character or a reassembled straddling sequence, served before the inner
    /// buffer.
    side: Vec<u8>,
    side_pos: usize,
    /// Output bytes consumed so far.
    emitted: u64,
    bad: Vec<u64>,
}

impl<R: BufRead> Utf8Sanitizer<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            validated: 0,
            side: Vec::with_capacity(8),
            side_pos: 0,
            emitted: 0,
            bad: Vec::new(),
        }
    }

    /// Whether replacements were recorded that [`take_bad`](Self::take_bad) has not returned.
    pub fn has_bad(&self) -> bool {
        !self.bad.is_empty()
    }

    /// Removes and returns the recorded offsets (in output bytes) of replaced sequences.
    pub fn take_bad(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.bad)
    }

    fn replace(&mut self) {
        self.bad.push(self.emitted);
        self.side.extend_from_slice(REPLACEMENT);
    }

    /// The inner buffer starts with an invalid or incomplete sequence: resolve it into `side`.
    fn slow_path(&mut self) -> io::Result<()> {
        self.side.clear();
        self.side_pos = 0;
        let mut seq: Vec<u8> = Vec::with_capacity(4);
        loop {
            let avail = self.inner.fill_buf()?;
            let Some(&b) = avail.first() else {
                // End of input inside a sequence.
                if !seq.is_empty() {
                    self.replace();
                }
                return Ok(());
            };
            seq.push(b);
            match std::str::from_utf8(&seq) {
                Ok(_) => {
                    self.inner.consume(1);
                    self.side.extend_from_slice(&seq);
                    return Ok(());
                }
                Err(e) if e.error_len().is_none() => self.inner.consume(1),
                Err(_) => {
                    // Drop the bytes before `b`, or `b` itself when it cannot start anything.
                    if seq.len() == 1 {
                        self.inner.consume(1);
                    }
                    self.replace();
                    return Ok(());
                }
            }
        }
    }
}

impl<R: BufRead> Read for Utf8Sanitizer<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::bufio::read_from_buf(self, out)
    }
}

impl<R: BufRead> BufRead for Utf8Sanitizer<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.side_pos < self.side.len() {
            return Ok(&self.side[self.side_pos..]);
        }
        if self.validated == 0 {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                return Ok(&[]);
            }
            let valid = match std::str::from_utf8(avail) {
                Ok(_) => avail.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid == 0 {
                self.slow_path()?;
                return Ok(&self.side[self.side_pos..]);
            }
            self.validated = valid;
        }
        let avail = self.inner.fill_buf()?;
        Ok(&avail[..self.validated.min(avail.len())])
    }

    fn consume(&mut self, amt: usize) {
        self.emitted += amt as u64;
        if self.side_pos < self.side.len() {
            self.side_pos = (self.side_pos + amt).min(self.side.len());
            return;
        }
        let amt = amt.min(self.validated);
        self.validated -= amt;
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bufio::Trickle;

    fn run(input: &[u8], step: usize) -> (String, Vec<u64>) {
        let mut s = Utf8Sanitizer::new(io::BufReader::with_capacity(step, Trickle(input, step)));
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out, s.take_bad())
    }

    #[test]
    fn valid_text_passes_through_even_when_split() {
        let text = "αβγ δ ≥ µ 中文 é".as_bytes();
        for step in 1..5 {
            let (out, bad) = run(text, step);
            assert_eq!(out.as_bytes(), text);
            assert!(bad.is_empty());
        }
    }

    #[test]
    fn invalid_bytes_are_replaced_and_located() {
        let (out, bad) = run(b"ab\xffcd\xe2\x82", 3);
        assert_eq!(out, "ab\u{FFFD}cd\u{FFFD}");
        assert_eq!(bad, vec![2, 7]);
    }
}
