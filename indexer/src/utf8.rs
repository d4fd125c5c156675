//! A reader that turns its input into valid UTF-8 and remembers where it had to.
//!
//! The XML reader stops for good at the first invalid byte, which would fail a whole file for
//! one bad abstract. Instead, each invalid sequence becomes U+FFFD here and its output offset is
//! recorded; the parser then skips just the record that contains it.
use std::io::{self, BufRead, Read};

const CHUNK: usize = 1 << 16;
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

pub struct Utf8Sanitizer<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    /// Output bytes handed out before `out`.
    base: u64,
    /// Bytes of a sequence cut by a chunk boundary, completed by the next read.
    carry: Vec<u8>,
    chunk: Box<[u8]>,
    bad: Vec<u64>,
}

impl<R: Read> Utf8Sanitizer<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            out: Vec::with_capacity(CHUNK + 4),
            pos: 0,
            base: 0,
            carry: Vec::new(),
            chunk: vec![0u8; CHUNK].into_boxed_slice(),
            bad: Vec::new(),
        }
    }

    /// Removes and returns the recorded offsets (in output bytes) of replaced sequences.
    pub fn take_bad(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.bad)
    }

    fn refill(&mut self) -> io::Result<()> {
        self.base += self.out.len() as u64;
        self.out.clear();
        self.pos = 0;
        loop {
            let n = loop {
                match self.inner.read(&mut self.chunk) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            let eof = n == 0;
            let mut raw = std::mem::take(&mut self.carry);
            raw.extend_from_slice(&self.chunk[..n]);
            if raw.is_empty() {
                return Ok(());
            }
            self.sanitize(&raw, eof);
            if !self.out.is_empty() || eof {
                return Ok(());
            }
        }
    }

    fn sanitize(&mut self, raw: &[u8], eof: bool) {
        let mut rest = raw;
        loop {
            match std::str::from_utf8(rest) {
                Ok(_) => {
                    self.out.extend_from_slice(rest);
                    return;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    self.out.extend_from_slice(&rest[..good]);
                    match e.error_len() {
                        Some(len) => {
                            self.replace();
                            rest = &rest[good + len..];
                        }
                        None if eof => {
                            self.replace();
                            return;
                        }
                        None => {
                            self.carry = rest[good..].to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn replace(&mut self) {
        self.bad.push(self.base + self.out.len() as u64);
        self.out.extend_from_slice(REPLACEMENT);
    }
}

impl<R: Read> Read for Utf8Sanitizer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Utf8Sanitizer<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `n` bytes per call, to split sequences across reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn run(input: &[u8], step: usize) -> (String, Vec<u64>) {
        let mut s = Utf8Sanitizer::new(Trickle(input, step));
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
