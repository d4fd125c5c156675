//! Small pieces shared by the parser's input layers ([`crate::source`], [`crate::utf8`]).
use std::io::{self, BufRead};

/// `Read::read` for a reader whose reading is defined by its `BufRead` side.
pub(crate) fn read_from_buf<B: BufRead>(b: &mut B, out: &mut [u8]) -> io::Result<usize> {
    let avail = b.fill_buf()?;
    let n = avail.len().min(out.len());
    out[..n].copy_from_slice(&avail[..n]);
    b.consume(n);
    Ok(n)
}

/// Hands out its input at most `step` bytes per read, so tests cross every buffer boundary.
#[cfg(test)]
pub(crate) struct Trickle<'a>(pub &'a [u8], pub usize);

#[cfg(test)]
impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
