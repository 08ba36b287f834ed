//! Skipping an array or object: the bulk of an AdmissionReview (managedFields, probes, resources, …).
//!
//! The input is scanned 64 bytes at a time, as simdjson's first stage does: one bit per byte for `"`, `\` and the
//! four brackets; escaped bytes found with carry arithmetic (an odd run of `\` escapes the byte after it); the
//! inside of strings with a prefix XOR of the unescaped quotes. Only the brackets outside strings are then visited
//! one by one, for the depth and kind of each level. On x86_64 the bits come from SSE2 compares (part of the
//! architecture's baseline, so always there); elsewhere from the same tests on eight bytes of a word at a time.
//!
//! What a skipped value must satisfy: brackets balanced and of matching kinds (for the first 128 levels), strings
//! terminated, a `\` escaping the byte after it. A `\` outside a string (never in valid JSON) escapes the next byte
//! too, as in simdjson.

use super::read::{HI, LO};
use super::Error;

/// A block's bytes of interest, bit `i` for byte `i`.
#[derive(Debug, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{`, `}`, `[` or `]`.
    bracket: u64,
}

const BLOCK: usize = 64;

/// Bytes 0x5B/0x7B (`[`/`{`) and 0x5D/0x7D (`]`/`}`) differ only in 0x20, the bit that tells an object's bracket.
const KIND: u8 = 0x20;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn masks(block: &[u8; BLOCK]) -> Masks {
    // SAFETY: the cfg above: this is only compiled where SSE2 is enabled (always, on x86_64).
    unsafe { masks_sse2(block) }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn masks_sse2(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x};
    let mut masks = Masks { quote: 0, backslash: 0, bracket: 0 };
    for (lane, bytes) in block.chunks_exact(16).enumerate() {
        let (mut low, mut high) = ([0; 8], [0; 8]);
        low.copy_from_slice(&bytes[..8]);
        high.copy_from_slice(&bytes[8..]);
        let v = _mm_set_epi64x(i64::from_le_bytes(high), i64::from_le_bytes(low));
        let folded = _mm_or_si128(v, _mm_set1_epi8(KIND as i8));
        let open = _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'{' as i8));
        let close = _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'}' as i8));
        let quote = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)));
        let backslash = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)));
        let bracket = _mm_movemask_epi8(_mm_or_si128(open, close));
        let at = lane * 16;
        masks.quote |= u64::from(quote as u16) << at;
        masks.backslash |= u64::from(backslash as u16) << at;
        masks.bracket |= u64::from(bracket as u16) << at;
    }
    masks
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn masks(block: &[u8; BLOCK]) -> Masks {
    masks_swar(block)
}

/// The portable way: each test on eight bytes of a word at once, each match's high bit gathered into a byte.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn masks_swar(block: &[u8; BLOCK]) -> Masks {
    // The high bit of each byte equal to `byte`, exactly (no borrow between bytes), gathered into the low 8 bits.
    let equal = |w: u64, byte: u8| {
        let x = w ^ (LO * u64::from(byte));
        let hits = !(((x & !HI) + !HI) | x) & HI;
        (hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
    };
    let mut masks = Masks { quote: 0, backslash: 0, bracket: 0 };
    for (n, chunk) in block.chunks_exact(8).enumerate() {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(chunk);
        let w = u64::from_le_bytes(bytes);
        let folded = w | (LO * u64::from(KIND));
        masks.quote |= equal(w, b'"') << (8 * n);
        masks.backslash |= equal(w, b'\\') << (8 * n);
        masks.bracket |= (equal(folded, b'{') | equal(folded, b'}')) << (8 * n);
    }
    masks
}

/// The bytes escaped by a `\` (the byte after an odd run of them), given the block's backslashes; `carry` is 1
/// when the previous block's last byte escapes this block's first, and is updated for the next block. simdjson's
/// `find_escaped`: runs starting on even and odd bits are told apart by adding the run starts to the runs.
fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows_escape = backslash << 1 | *carry;
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    (EVEN ^ (even_starts << 1)) & follows_escape
}

/// Bit `i` is the XOR of bits `0..=i`: set from an opening quote up to (not including) its closing one.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The offset just past the array or object whose opening bracket is at `pos`.
///
/// A depth count and the closing bracket each level expects, no recursion and no allocation. Values may nest
/// deeper than the 128 levels whose kinds are kept, as serde_json skips them: below 128 levels each closing bracket
/// must match its opening one; deeper ones are only counted (the end of the value is found all the same).
pub(super) fn container_end(input: &[u8], pos: usize) -> Result<usize, Error> {
    const KINDS: usize = 128;
    // The closing bracket each of the first `KINDS` open levels expects (an opening bracket + 2 is its closing one).
    let mut expected = [0u8; KINDS];
    let mut level: usize = 0;
    // All ones while a string is open at the end of the previous block; 1 when it ends escaping this one's start.
    let mut in_string: u64 = 0;
    let mut escape_carry: u64 = 0;
    let mut start = pos;
    let mut padded = [b' '; BLOCK];
    while start < input.len() {
        let block = match input[start..].first_chunk::<BLOCK>() {
            Some(block) => block,
            None => {
                // The last, short block, padded with spaces: neither quotes nor brackets, so they change nothing.
                let rest = &input[start..];
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        let masks = masks(block);
        let quotes = masks.quote & !escaped(masks.backslash, &mut escape_carry);
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = ((inside as i64) >> 63) as u64;
        let mut brackets = masks.bracket & !inside;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let byte = block[i];
            if byte | KIND == b'{' {
                if let Some(slot) = expected.get_mut(level) {
                    *slot = byte + 2;
                }
                level += 1;
            } else {
                // A closing bracket before any opening one is in the first block only at `pos` itself, which the
                // caller guarantees is an opening one; so `level` is at least 1 here.
                level = level.saturating_sub(1);
                if expected.get(level).is_some_and(|&e| e != byte) {
                    let what = if byte == b'}' { "`]`" } else { "`}`" };
                    return Err(Error::Expected { what, at: start + i });
                }
                if level == 0 {
                    return Ok(start + i + 1);
                }
            }
        }
        start += BLOCK;
    }
    let what = match expected.get(level.saturating_sub(1)) {
        _ if in_string != 0 => "a string",
        Some(b'}') => "an object",
        _ => "an array",
    };
    Err(Error::Eof { what, at: input.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_masks(block: &[u8; BLOCK]) -> Masks {
        let bits = |f: &dyn Fn(u8) -> bool| block.iter().enumerate().fold(0, |m, (i, &b)| m | u64::from(f(b)) << i);
        Masks {
            quote: bits(&|b| b == b'"'),
            backslash: bits(&|b| b == b'\\'),
            bracket: bits(&|b| matches!(b, b'{' | b'}' | b'[' | b']')),
        }
    }

    /// The bytes escaped, one byte at a time; `carry` as for [`escaped`].
    fn naive_escaped(backslash: u64, carry: &mut u64) -> u64 {
        let mut out = 0;
        let mut escaping = *carry == 1;
        for i in 0..BLOCK {
            if escaping {
                out |= 1 << i;
                escaping = false;
            } else if backslash >> i & 1 == 1 {
                escaping = true;
            }
        }
        *carry = u64::from(escaping);
        out
    }

    /// The skipper's contract one byte at a time: a `\` escapes the next byte (a quote or a `\` it escapes is plain
    /// text; brackets outside strings count whatever precedes them).
    fn naive_end(input: &[u8], pos: usize) -> Result<usize, Error> {
        let (mut in_string, mut escaping) = (false, false);
        let mut kinds: Vec<bool> = Vec::new();
        for (i, &byte) in input.iter().enumerate().skip(pos) {
            let escaped = std::mem::replace(&mut escaping, false);
            match byte {
                b'\\' if !escaped => escaping = true,
                b'"' if !escaped => in_string = !in_string,
                b'{' | b'[' if !in_string => kinds.push(byte == b'{'),
                b'}' | b']' if !in_string => {
                    let object = byte == b'}';
                    let opened = kinds.pop();
                    if kinds.len() < 128 && opened != Some(object) {
                        return Err(Error::Expected { what: if object { "`]`" } else { "`}`" }, at: i });
                    }
                    if kinds.is_empty() {
                        return Ok(i + 1);
                    }
                }
                _ => {}
            }
        }
        let what = match kinds.last() {
            _ if in_string => "a string",
            Some(true) if kinds.len() <= 128 => "an object",
            _ => "an array",
        };
        Err(Error::Eof { what, at: input.len() })
    }

    fn block_of(bytes: &[u8]) -> [u8; BLOCK] {
        let mut block = [b' '; BLOCK];
        block.copy_from_slice(&bytes[..BLOCK]);
        block
    }

    /// Bytes where the scanner's choices lie: the six special ones, a letter, and bytes that differ from them by
    /// the case bit or the high bit.
    fn tricky() -> impl Strategy<Value = u8> {
        prop::sample::select(&b"\"\\{}[] a\x02\x7c\x3c\x3b\x7b\xfb\xdb\xa2\xdc\xfd\x00\xff"[..])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn masks_match_a_byte_by_byte_test(bytes in prop::collection::vec(any::<u8>(), BLOCK),
                                           special in prop::collection::vec(tricky(), BLOCK),
                                           mix in any::<u64>()) {
            let mixed: Vec<u8> = bytes.iter().zip(&special).enumerate()
                .map(|(i, (&b, &s))| if mix >> i & 1 == 1 { s } else { b }).collect();
            let block = block_of(&mixed);
            prop_assert_eq!(masks(&block), naive_masks(&block));
            prop_assert_eq!(masks_swar(&block), naive_masks(&block));
        }

        #[test]
        fn escapes_match_a_byte_by_byte_walk(backslash in any::<u64>(), dense in any::<u64>(), carry in 0u64..2) {
            // Long runs matter most: make many of them by OR-ing with a dense pattern.
            for backslash in [backslash, backslash | dense, backslash & dense, !0] {
                let (mut fast, mut slow) = (carry, carry);
                prop_assert_eq!(escaped(backslash, &mut fast), naive_escaped(backslash, &mut slow), "{:064b}", backslash);
                prop_assert_eq!(fast, slow);
            }
        }

        #[test]
        fn ends_match_a_byte_by_byte_walk(body in prop::collection::vec(tricky(), 0..400), open in any::<bool>()) {
            let mut input = vec![if open { b'{' } else { b'[' }];
            input.extend(body);
            prop_assert_eq!(container_end(&input, 0), naive_end(&input, 0), "{}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn prefix_xor_marks_the_inside_of_strings() {
        assert_eq!(prefix_xor(0b1001), 0b0111);
        assert_eq!(prefix_xor(1 << 63), 1 << 63);
        assert_eq!(prefix_xor(0b10_0100), 0b01_1100);
    }

    #[test]
    fn values_spanning_blocks_end_where_they_end() {
        // Strings, escapes and nesting that cross the 64-byte boundaries at every offset.
        for filler in 0..200 {
            let pad = "x".repeat(filler);
            for json in [
                format!(r#"{{"{pad}":"a\"b\\","k":[{{}},["{pad}\\\\\\\"]"]]}}"#),
                format!(r#"[["{pad}"],{{"\\":"}}]{pad}"}}]"#),
                format!("{}{pad}{}", "[".repeat(70), "]".repeat(70)),
            ] {
                let input = format!("{json} ,");
                assert_eq!(container_end(input.as_bytes(), 0), Ok(json.len()), "{json}");
                assert_eq!(naive_end(input.as_bytes(), 0), Ok(json.len()), "{json}");
                let cut = &input.as_bytes()[..json.len() - 1];
                assert_eq!(container_end(cut, 0), naive_end(cut, 0), "{json}");
                assert!(container_end(cut, 0).is_err());
            }
        }
    }
}
