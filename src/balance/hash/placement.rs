//! Where endpoints land: SHA-1 of documented strings, without allocating per point.

use std::fmt::{self, Write};
use std::net::SocketAddr;

use sha1::{Digest, Sha1};

/// The SHA-1 input naming one endpoint: its address as Rust's `Display` writes it, plus a
/// suffix. Longest address: `[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535`, 58
/// bytes; `-4294967295` adds 11.
pub(super) struct Name {
    buf: [u8; 80],
    len: usize,
    base: usize,
}

impl Name {
    /// `"{addr}"`.
    pub(super) fn new(addr: SocketAddr) -> Self {
        let mut name = Name {
            buf: [0; 80],
            len: 0,
            base: 0,
        };
        // Cannot fail: the longest address fits the buffer with room for a replica suffix.
        let _ = write!(name, "{addr}");
        name.base = name.len;
        name
    }

    /// SHA-1 of `"{addr}"`, as two big-endian `u64`s: digest bytes 0..8 and 8..16.
    pub(super) fn digest_pair(&self) -> (u64, u64) {
        let d = Sha1::digest(&self.buf[..self.base]);
        (be_u64(&d[..8]), be_u64(&d[8..16]))
    }

    /// The ring point of replica `replica`: the first 8 bytes of SHA-1 of `"{addr}-{replica}"`
    /// (replica in decimal, no padding) as a big-endian `u64`.
    pub(super) fn point(&mut self, replica: u32) -> u64 {
        self.len = self.base;
        self.push(b'-');
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut r = replica;
        loop {
            at -= 1;
            // r % 10 < 10, so the cast cannot truncate.
            digits[at] = b'0' + (r % 10) as u8;
            r /= 10;
            if r == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            self.push(d);
        }
        let d = Sha1::digest(&self.buf[..self.len]);
        be_u64(&d[..8])
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }
}

impl Write for Name {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The first 8 bytes, big-endian; callers pass 8-byte slices of a 20-byte digest.
fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}
