//! The byte level: whitespace, literals, numbers, strings that are read, and the skipper.
//!
//! Strings are scanned eight bytes at a time (a word of the input, compared bytewise with the usual "has a zero
//! byte" arithmetic) for the few bytes that end the fast path; everything between is neither looked at again nor
//! copied.

use super::Error;

/// Arrays and objects that are read may nest at most `MAX_DEPTH - 1` deep: serde_json's recursion limit, so both
/// readers refuse the same documents for depth.
pub const MAX_DEPTH: usize = 128;

/// `0x01` in every byte of a word.
pub(super) const LO: u64 = u64::from_le_bytes([1; 8]);
/// `0x80` in every byte of a word.
pub(super) const HI: u64 = LO << 7;

/// The high bit of every byte of `word` that equals `byte`. Above a match the result may hold false positives (a
/// borrow runs upwards), below the first match it holds none: the lowest flagged byte is exact, and it is the only
/// one used.
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (LO * u64::from(byte));
    x.wrapping_sub(LO) & !x
}

/// The high bit of every byte below 0x20 (same caveat as [`bytes_equal`]).
#[inline(always)]
fn bytes_control(word: u64) -> u64 {
    word.wrapping_sub(LO * 0x20) & !word
}

/// What ends the fast scan of a string that is read: `"`, `\`, a control character, or a non-ASCII byte.
#[inline(always)]
fn read_stops(word: u64) -> u64 {
    (bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_control(word) | word) & HI
}

fn is_read_stop(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0..0x20 | 0x80..)
}

/// [`find`] with [`read_stops`], sixteen bytes at a time where SSE2 is there (always, on x86_64): most strings that
/// are read (keys, names) end within the first sixteen bytes, and a scan of one word at a time spent ~100
/// instructions a string.
#[inline(always)]
fn find_read_stop(input: &[u8], pos: usize) -> Option<(usize, u8)> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    // SAFETY: the cfg above: this is only compiled where SSE2 is enabled (always, on x86_64).
    let pos = match unsafe { find_read_stop_sse2(input, pos) } {
        Ok(stop) => return Some(stop),
        Err(rest) => rest,
    };
    find(input, pos, read_stops, is_read_stop)
}

/// The first byte that [`is_read_stop`] among the whole sixteen-byte chunks from `pos`, or where the bytes left
/// are fewer than sixteen. `"` and `\` are compared for; one signed comparison with 0x20 catches both the
/// control characters and the bytes from 0x80 up (negative as signed bytes).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn find_read_stop_sse2(input: &[u8], mut pos: usize) -> Result<(usize, u8), usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };
    while let Some(chunk) = input.get(pos..).and_then(<[u8]>::first_chunk::<16>) {
        let (mut low, mut high) = ([0; 8], [0; 8]);
        low.copy_from_slice(&chunk[..8]);
        high.copy_from_slice(&chunk[8..]);
        let v = _mm_set_epi64x(i64::from_le_bytes(high), i64::from_le_bytes(low));
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let control_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let flags = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control_or_high)) as u32;
        if flags != 0 {
            let at = flags.trailing_zeros() as usize;
            if let Some(&byte) = chunk.get(at) {
                return Ok((pos + at, byte));
            }
        }
        pos += 16;
    }
    Err(pos)
}

/// The same, once the string is known not to be ASCII (it is then validated as a whole at its end).
#[inline(always)]
fn utf8_stops(word: u64) -> u64 {
    (bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_control(word)) & HI
}

fn is_utf8_stop(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0..0x20)
}

/// What matters in a string that is skipped: where it ends, and which quote is escaped.
#[inline(always)]
fn skip_stops(word: u64) -> u64 {
    (bytes_equal(word, b'"') | bytes_equal(word, b'\\')) & HI
}

fn is_skip_stop(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\')
}

/// The first byte at or after `pos` that `word` (eight bytes at a time) or `byte` (the last few) flags: its offset
/// and value.
#[inline(always)]
fn find(input: &[u8], mut pos: usize, word: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> Option<(usize, u8)> {
    while let Some(chunk) = input.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let bytes = u64::from_le_bytes(*chunk);
        let flags = word(bytes);
        if flags != 0 {
            let bit = flags.trailing_zeros();
            return Some((pos + (bit / 8) as usize, (bytes >> (bit & !7)) as u8));
        }
        pos += 8;
    }
    let tail = input.get(pos..)?;
    tail.iter().position(|&b| byte(b)).map(|i| (pos + i, tail[i]))
}

/// The offset just past the string whose contents start at `pos`, looking only for its end: escapes are not
/// checked (a `\` takes the next byte with it), nor UTF-8, nor control characters.
fn skip_string_body(input: &[u8], mut pos: usize) -> Result<usize, Error> {
    loop {
        match find(input, pos, skip_stops, is_skip_stop) {
            Some((at, b'"')) => return Ok(at + 1),
            Some((at, _)) => pos = at + 2,
            None => return Err(Error::Eof { what: "a string", at: input.len() }),
        }
    }
}

/// A string as read: borrowed from the input when it has no escapes.
pub(super) enum Str<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Owned(s) => s,
        }
    }
}

/// A number as serde_json hands it to visitors: non-negative integers as u64, negative ones as i64, everything
/// else (a fraction, an exponent, beyond 64 bits, `-0`) as f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// The reader: the input, where it is, and how many arrays and objects are open around it.
pub struct Deserializer<'de> {
    pub(super) input: &'de [u8],
    pub(super) pos: usize,
    depth: usize,
}

impl<'de> Deserializer<'de> {
    pub fn new(input: &'de [u8]) -> Self {
        Self { input, pos: 0, depth: 0 }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        loop {
            match self.input.get(self.pos) {
                Some(b' ' | b'\n' | b'\t' | b'\r') => self.pos += 1,
                other => return other.copied(),
            }
        }
    }

    /// The first byte of the value that must come next.
    #[inline]
    pub(super) fn peek_value(&mut self) -> Result<u8, Error> {
        self.peek().ok_or(Error::Eof { what: "a value", at: self.pos })
    }

    /// After the document: nothing but whitespace.
    pub(super) fn end(&mut self) -> Result<(), Error> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Error::TrailingCharacters { at: self.pos }),
        }
    }

    /// Consumes the `[` or `{` at the cursor, one level deeper.
    #[inline]
    pub(super) fn enter(&mut self) -> Result<(), Error> {
        if self.depth + 1 >= MAX_DEPTH {
            return Err(Error::TooDeep { at: self.pos });
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Consumes `close` (after whitespace), one level up.
    #[inline]
    pub(super) fn leave(&mut self, close: u8, what: &'static str) -> Result<(), Error> {
        match self.peek() {
            Some(b) if b == close => {
                self.pos += 1;
                self.depth -= 1;
                Ok(())
            }
            // The visitor stopped before the end: more elements or entries than the type takes.
            Some(b',') => Err(Error::TrailingCharacters { at: self.pos }),
            Some(_) => Err(Error::Expected { what: if close == b']' { "`]`" } else { "`}`" }, at: self.pos }),
            None => Err(Error::Eof { what, at: self.pos }),
        }
    }

    /// Consumes `word` (`true`, `false` or `null`) at the cursor.
    #[inline]
    pub(super) fn literal(&mut self, word: &'static [u8]) -> Result<(), Error> {
        let end = self.pos + word.len();
        match self.input.get(self.pos..end) {
            Some(bytes) if bytes == word => {
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(Error::Expected { what: "`true`, `false` or `null`", at: self.pos }),
            None => Err(Error::Eof { what: "a value", at: self.input.len() }),
        }
    }

    /// Reads the number at the cursor (a `-` or a digit), exactly as JSON spells numbers.
    pub(super) fn read_number(&mut self) -> Result<Number, Error> {
        let input = self.input;
        let start = self.pos;
        let mut pos = start;
        let negative = input.get(pos) == Some(&b'-');
        pos += usize::from(negative);
        let mut value: u64 = 0;
        let mut float = false;
        match input.get(pos) {
            Some(b'0') => {
                pos += 1;
                if let Some(b'0'..=b'9') = input.get(pos) {
                    return Err(Error::InvalidNumber { at: pos });
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = input.get(pos) {
                    match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))) {
                        Some(v) => value = v,
                        None => float = true,
                    }
                    pos += 1;
                }
            }
            Some(_) => return Err(Error::InvalidNumber { at: pos }),
            None => return Err(Error::Eof { what: "a number", at: pos }),
        }
        if input.get(pos) == Some(&b'.') {
            pos = digits(input, pos + 1)?;
            float = true;
        }
        if let Some(b'e' | b'E') = input.get(pos) {
            pos += 1;
            if let Some(b'+' | b'-') = input.get(pos) {
                pos += 1;
            }
            pos = digits(input, pos)?;
            float = true;
        }
        self.pos = pos;
        if !float {
            if !negative {
                return Ok(Number::U64(value));
            }
            if value != 0 && value <= 1 << 63 {
                return Ok(Number::I64(0u64.wrapping_sub(value) as i64));
            }
        }
        let text = std::str::from_utf8(&input[start..pos]).map_err(|_| Error::InvalidNumber { at: start })?;
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Number::F64(f)),
            Ok(_) => Err(Error::NumberOutOfRange { at: start }),
            Err(_) => Err(Error::InvalidNumber { at: start }),
        }
    }

    /// Reads the string at the cursor (its opening `"`): borrowed when it holds no escape.
    ///
    /// Split in two: most strings that are read are ASCII without escapes, and their path, kept this short, costs
    /// a third of what it did inside one function with every case (its register saves alone were ~40
    /// instructions a string).
    #[inline]
    pub(super) fn read_str(&mut self) -> Result<Str<'de>, Error> {
        let input = self.input;
        let start = self.pos + 1;
        if let Some((at, b'"')) = find_read_stop(input, start) {
            if let Some(bytes) = input.get(start..at) {
                self.pos = at + 1;
                return Ok(Str::Borrowed(ascii_str(bytes)));
            }
        }
        self.read_str_slow(start)
    }

    /// [`Self::read_str`] for every other string (non-ASCII, escaped, broken), from its first byte at `start`.
    #[inline(never)]
    fn read_str_slow(&mut self, start: usize) -> Result<Str<'de>, Error> {
        let input = self.input;
        let mut pos = start;
        let mut ascii = true;
        loop {
            let stop = if ascii { find_read_stop(input, pos) } else { find(input, pos, utf8_stops, is_utf8_stop) };
            match stop {
                Some((at, b'"')) => {
                    self.pos = at + 1;
                    let bytes = &input[start..at];
                    return if ascii {
                        Ok(Str::Borrowed(ascii_str(bytes)))
                    } else {
                        utf8(bytes, start).map(Str::Borrowed)
                    };
                }
                Some((at, b'\\')) => return self.read_escaped(start, at),
                Some((at, 0..0x20)) => return Err(Error::ControlCharacter { at }),
                Some((at, _)) => {
                    ascii = false;
                    pos = at + 1;
                }
                None => return Err(Error::Eof { what: "a string", at: input.len() }),
            }
        }
    }

    /// The rest of a string from its first escape (at `at`) on, unescaped into a new `String`.
    #[inline(never)]
    fn read_escaped(&mut self, start: usize, mut at: usize) -> Result<Str<'de>, Error> {
        let input = self.input;
        let mut out = Vec::with_capacity(at - start + 16);
        let mut copied = start;
        loop {
            out.extend_from_slice(&input[copied..at]);
            match input.get(at) {
                Some(b'"') => break,
                Some(b'\\') => at = unescape(input, at, &mut out)?,
                Some(_) => return Err(Error::ControlCharacter { at }),
                None => return Err(Error::Eof { what: "a string", at: input.len() }),
            }
            copied = at;
            at = find(input, at, utf8_stops, is_utf8_stop).map_or(input.len(), |(at, _)| at);
        }
        self.pos = at + 1;
        String::from_utf8(out).map(Str::Owned).map_err(|_| Error::InvalidUtf8 { at: start - 1 })
    }

    /// Skips the string at the cursor (its opening `"`).
    pub(super) fn skip_str(&mut self) -> Result<(), Error> {
        self.pos = skip_string_body(self.input, self.pos + 1)?;
        Ok(())
    }

    /// Skips the value at the cursor without building anything, checking only what finds its end (see the module
    /// docs).
    pub(super) fn skip_value(&mut self) -> Result<(), Error> {
        match self.peek_value()? {
            b'"' => self.skip_str(),
            b'{' | b'[' => self.skip_container(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let rest = &self.input[self.pos + 1..];
                let len = rest.iter().position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'));
                self.pos += 1 + len.unwrap_or(rest.len());
                Ok(())
            }
            _ => Err(Error::Expected { what: "a value", at: self.pos }),
        }
    }

    /// Skips the array or object at the cursor (see [`super::skip`]).
    fn skip_container(&mut self) -> Result<(), Error> {
        self.pos = super::skip::container_end(self.input, self.pos)?;
        Ok(())
    }
}

/// `bytes`, all below 0x80 as the scan that found them checked, as text without a second look: validating every
/// key and short value again was an eighth of a review's instructions.
#[inline]
fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii(), "the fast scan let a non-ASCII byte through");
    // SAFETY: ASCII is UTF-8. `find_read_stop` flags every byte with its high bit set (in SSE2, negative in the
    // signed compare with 0x20; in words, the `word & HI` term, exact byte by byte), it returns the lowest flagged
    // byte, and `read_str` / `read_str_slow` only call this when no such byte came before the closing quote (the
    // first stop is the quote; `ascii` is still true). Covered by the fuzz targets, which run with debug assertions
    // on, and by `a_read_string_stops_at_the_right_byte_wherever_it_is`.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// `bytes` as text, or where it is not UTF-8.
#[inline]
fn utf8(bytes: &[u8], start: usize) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 { at: start + e.valid_up_to() })
}

/// The offset after one or more digits at `pos`.
fn digits(input: &[u8], pos: usize) -> Result<usize, Error> {
    let count = input.get(pos..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count();
    match (count, input.get(pos)) {
        (0, Some(_)) => Err(Error::InvalidNumber { at: pos }),
        (0, None) => Err(Error::Eof { what: "a number", at: pos }),
        _ => Ok(pos + count),
    }
}

/// Appends the escape at `at` (its `\`) to `out`; returns the offset after it.
fn unescape(input: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
    let byte = match input.get(at + 1) {
        Some(b'"') => b'"',
        Some(b'\\') => b'\\',
        Some(b'/') => b'/',
        Some(b'b') => 0x08,
        Some(b'f') => 0x0c,
        Some(b'n') => b'\n',
        Some(b'r') => b'\r',
        Some(b't') => b'\t',
        Some(b'u') => {
            let (c, next) = unicode_escape(input, at)?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Ok(next);
        }
        Some(_) => return Err(Error::InvalidEscape { at }),
        None => return Err(Error::Eof { what: "a string", at: input.len() }),
    };
    out.push(byte);
    Ok(at + 2)
}

/// The character of the `\uXXXX` escape at `at` — with the `\uXXXX` that follows when it is a surrogate pair —
/// and the offset after it. Unpaired surrogates are refused (they are not text).
fn unicode_escape(input: &[u8], at: usize) -> Result<(char, usize), Error> {
    let first = hex4(input, at + 2)?;
    let code = match first {
        0xD800..=0xDBFF => {
            match input.get(at + 6..at + 8) {
                Some(b"\\u") => {}
                Some(_) => return Err(Error::LoneSurrogate { at }),
                None => return Err(Error::Eof { what: "a string", at: input.len() }),
            }
            let second = hex4(input, at + 8)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return Err(Error::LoneSurrogate { at });
            }
            let code = 0x10000 + ((first - 0xD800) << 10 | (second - 0xDC00));
            return char::from_u32(code).map(|c| (c, at + 12)).ok_or(Error::LoneSurrogate { at });
        }
        code => code,
    };
    char::from_u32(code).map(|c| (c, at + 6)).ok_or(Error::LoneSurrogate { at })
}

/// The four hex digits at `at`.
fn hex4(input: &[u8], at: usize) -> Result<u32, Error> {
    let digits = input.get(at..at + 4).ok_or(Error::Eof { what: "a string", at: input.len() })?;
    digits.iter().try_fold(0, |code, &d| match char::from(d).to_digit(16) {
        Some(digit) => Ok(code << 4 | digit),
        None => Err(Error::InvalidEscape { at: at - 2 }),
    })
}
