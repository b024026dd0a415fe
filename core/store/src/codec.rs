//! The plaintext inside a sealed value: a compact, length-prefixed binary record.
//!
//! Unsigned integers and lengths are LEB128 varints, signed integers zig-zag varints, floats
//! 8 bytes little-endian: a typical event record is about 50 bytes, which matters because
//! SQLite's cost per row grows with its size. Every length is bounded by what is left and by a
//! per-call maximum, and a varint longer than its type or not in its shortest form is refused,
//! so a damaged record is a clean [`DecodeError`], never an allocation blow-up or a panic.

/// A record could not be decoded (only possible for data that passed authentication under a
/// matching key but has the wrong layout, i.e. a bug or a forged-but-valid key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeError;

/// Builds a record.
#[derive(Debug, Default)]
pub(crate) struct Encoder(Vec<u8>);

impl Encoder {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Encoder(Vec::with_capacity(n))
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.u64(u64::from(v))
    }

    pub(crate) fn u64(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        // Zig-zag: small magnitudes of either sign stay short.
        self.u64(((v << 1) ^ (v >> 63)) as u64)
    }

    pub(crate) fn f64(&mut self, v: f64) -> &mut Self {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        self
    }

    /// Writes a length-prefixed byte string (callers bound lengths far below `u32::MAX`).
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a record, bounding every length.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
}

type DResult<T> = Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }

    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if n > self.buf.len() {
            return Err(DecodeError);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DResult<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| DecodeError)
    }

    pub(crate) fn u8(&mut self) -> DResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> DResult<u32> {
        u32::try_from(self.u64()?).map_err(|_| DecodeError)
    }

    pub(crate) fn u64(&mut self) -> DResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && bits > 1 {
                return Err(DecodeError);
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                // Shortest form only: one value, one encoding.
                if byte == 0 && shift > 0 {
                    return Err(DecodeError);
                }
                return Ok(v);
            }
        }
        Err(DecodeError)
    }

    pub(crate) fn i64(&mut self) -> DResult<i64> {
        let z = self.u64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(crate) fn f64(&mut self) -> DResult<f64> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array()?)))
    }

    pub(crate) fn bytes(&mut self, max: usize) -> DResult<&'a [u8]> {
        let len = usize::try_from(self.u64()?).map_err(|_| DecodeError)?;
        if len > max {
            return Err(DecodeError);
        }
        self.take(len)
    }

    pub(crate) fn string(&mut self, max: usize) -> DResult<String> {
        let bytes = self.bytes(max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError)
    }

    /// Succeeds only if the whole record was consumed (trailing bytes mean a layout mismatch).
    pub(crate) fn finish(self) -> DResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut e = Encoder::default();
        e.u8(3)
            .u32(7)
            .i64(-9)
            .u64(11)
            .f64(0.5)
            .str("héllo")
            .bytes(&[1, 2]);
        e.u64(u64::MAX).i64(i64::MIN).i64(i64::MAX).u32(u32::MAX);
        let buf = e.finish();
        let mut d = Decoder::new(&buf);
        assert_eq!(d.u8(), Ok(3));
        assert_eq!(d.u32(), Ok(7));
        assert_eq!(d.i64(), Ok(-9));
        assert_eq!(d.u64(), Ok(11));
        assert_eq!(d.f64(), Ok(0.5));
        assert_eq!(d.string(16).as_deref(), Ok("héllo"));
        assert_eq!(d.bytes(2), Ok(&[1u8, 2][..]));
        assert_eq!(d.u64(), Ok(u64::MAX));
        assert_eq!(d.i64(), Ok(i64::MIN));
        assert_eq!(d.i64(), Ok(i64::MAX));
        assert_eq!(d.u32(), Ok(u32::MAX));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn varints_are_short_and_canonical() {
        let mut e = Encoder::default();
        e.u64(127).u64(128).i64(-1);
        assert_eq!(e.finish(), [0x7f, 0x80, 0x01, 0x01]);
        // Overlong (non-shortest) and over-width encodings are refused.
        assert_eq!(Decoder::new(&[0x80, 0x00]).u64(), Err(DecodeError));
        assert_eq!(Decoder::new(&[0xff; 10]).u64(), Err(DecodeError));
        assert_eq!(Decoder::new(&[0xff; 11]).u64(), Err(DecodeError));
        assert_eq!(
            Decoder::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).u32(),
            Err(DecodeError)
        );
    }

    #[test]
    fn bounds_and_truncation_are_errors() {
        let mut e = Encoder::default();
        e.str("abcdef");
        let buf = e.finish();
        assert_eq!(Decoder::new(&buf).string(5), Err(DecodeError));
        assert_eq!(
            Decoder::new(&buf[..buf.len() - 1]).string(16),
            Err(DecodeError)
        );
        assert_eq!(
            Decoder::new(&[0xff, 0xff, 0xff, 0xff]).bytes(usize::MAX),
            Err(DecodeError)
        );
        let mut d = Decoder::new(&buf);
        assert_eq!(d.u8(), Ok(6));
        assert_eq!(d.finish(), Err(DecodeError));
    }
}
