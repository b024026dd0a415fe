//! Little-endian byte encoding for the model's versioned blobs. Every read is bounds-checked
//! and every length is capped by the caller, so a hostile blob fails cleanly.

use crate::error::{Error, Result};

pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new(magic: &[u8; 4], version: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 5);
        buf.extend_from_slice(magic);
        buf.push(version);
        Writer(buf)
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        // Callers only encode strings already bounded far below u16::MAX (catalog checks).
        self.0.extend_from_slice(&(s.len() as u16).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub(crate) fn f32s(&mut self, v: &[f32]) -> &mut Self {
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the magic and returns the reader positioned after the version byte, which must
    /// be `version`.
    pub(crate) fn open(
        buf: &'a [u8],
        magic: &[u8; 4],
        version: u8,
        what: &'static str,
    ) -> Result<Self> {
        let mut r = Reader { buf, what };
        if r.take(4)? != magic {
            return Err(r.err("wrong magic"));
        }
        let found = r.u8()?;
        if found != version {
            return Err(Error::BlobVersion {
                what,
                version: found,
            });
        }
        Ok(r)
    }

    pub(crate) fn err(&self, reason: &'static str) -> Error {
        Error::Blob {
            what: self.what,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn str(&mut self, max: usize) -> Result<String> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        if len > max {
            return Err(self.err("string too long"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    /// Exactly `n` finite f32 values. The caller has bounded `n`; the remaining length is
    /// checked before allocating.
    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.err("length overflow"))?,
        )?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(self.err("non-finite parameter"));
        }
        Ok(v)
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}
