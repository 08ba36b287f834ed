//! Writing JSON strings into a byte buffer, for the response and the patch.

/// `text` as a JSON string, escaped exactly as serde_json escapes it (`"`, `\` and the C0 controls, nothing else).
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Names, paths and ARNs rarely need an escape: one pass over the bytes without an early exit (so the compiler
    // can take many at a time), then one copy. serde_json's writer cost ~280 instructions a string
    // (9 strings, 2,529 instructions of the example review).
    let plain = !text.bytes().fold(false, |escape, b| escape | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// `bytes` in standard base64 with padding, as a JSON string (base64 needs no escapes).
///
/// The base64 crate's encoder, one character at a time, was ~5,400 instructions for the example review's 755-byte
/// patch (a fifth of the review). Here: 16 characters per SSSE3 shuffle where the CPU has it (Intel's since 2006,
/// AMD's since 2011; checked at run time, the flag cached by std), else two characters per table lookup.
pub fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len() + 1;
    out.resize(out.len() + base64_string_len(bytes.len()), b'"');
    let end = out.len() - 1;
    let encoded = &mut out[start..end];
    let done = base64_simd(bytes, encoded);
    // `done` is a multiple of 12, so the rest starts on a group of three.
    if let (Some(bytes), Some(encoded)) = (bytes.get(done..), encoded.get_mut(done / 3 * 4..)) {
        base64_scalar(bytes, encoded);
    }
}

/// The bytes [`write_base64`] writes for `len` bytes: four characters per started group of three, and the quotes.
pub fn base64_string_len(len: usize) -> usize {
    len.div_ceil(3) * 4 + 2
}

/// Encodes whole 12-byte groups while 16 bytes can be read; returns how many bytes it encoded.
#[cfg(target_arch = "x86_64")]
fn base64_simd(bytes: &[u8], encoded: &mut [u8]) -> usize {
    if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3, checked just above.
        unsafe { base64_ssse3(bytes, encoded) }
    } else {
        0
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn base64_simd(_: &[u8], _: &mut [u8]) -> usize {
    0
}

/// Wojciech Muła's SSE encoding: twelve bytes spread to four per 32-bit lane, the four 6-bit indices moved into
/// place with two multiplies, then each index turned into its character by adding an offset picked per range
/// (A–Z, a–z, 0–9, `+`, `/`) with one shuffle.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn base64_ssse3(bytes: &[u8], encoded: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    // Hidden from the optimizer: seeing the constant, LLVM turns the one `pmulhuw` into 15 unpacks, shifts and
    // packs (38 instructions a block instead of 25).
    let first_third_by = std::hint::black_box(_mm_set1_epi32(0x0400_0040));
    let mut done = 0;
    for (k, sixteen) in encoded.chunks_exact_mut(16).enumerate() {
        let Some(window) = bytes.get(k * 12..k * 12 + 16) else { break };
        let (mut low, mut high) = ([0; 8], [0; 8]);
        low.copy_from_slice(&window[..8]);
        high.copy_from_slice(&window[8..]);
        let v = _mm_set_epi64x(i64::from_le_bytes(high), i64::from_le_bytes(low));
        // Each group b0 b1 b2 as the lane's bytes b1 b0 b2 b1.
        let lanes = _mm_shuffle_epi8(v, _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1));
        let first_third = _mm_mulhi_epu16(_mm_and_si128(lanes, _mm_set1_epi32(0x0fc0_fc00)), first_third_by);
        let second_fourth =
            _mm_mullo_epi16(_mm_and_si128(lanes, _mm_set1_epi32(0x003f_03f0)), _mm_set1_epi32(0x0100_0010));
        let indices = _mm_or_si128(first_third, second_fourth);
        // 0 for a–z, 1–10 for digits, 11 for `+`, 12 for `/`, 13 for A–Z: the slot of the range's offset.
        let below_26 = _mm_cmpgt_epi8(_mm_set1_epi8(26), indices);
        let slot = _mm_or_si128(_mm_subs_epu8(indices, _mm_set1_epi8(51)), _mm_and_si128(below_26, _mm_set1_epi8(13)));
        let offsets = _mm_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
        let chars = _mm_add_epi8(_mm_shuffle_epi8(offsets, slot), indices);
        let (first, second) = sixteen.split_at_mut(8);
        first.copy_from_slice(&_mm_cvtsi128_si64(chars).to_le_bytes());
        second.copy_from_slice(&_mm_cvtsi128_si64(_mm_unpackhi_epi64(chars, chars)).to_le_bytes());
        done += 12;
    }
    done
}

/// Two characters per lookup in a table of 12-bit values; `encoded` is exactly the encoding's length.
fn base64_scalar(bytes: &[u8], encoded: &mut [u8]) {
    // Six bytes (48 bits) into eight characters: four 12-bit lookups, one 8-byte store. Each block's bytes are
    // read as one 8-byte load while two more bytes follow it, else one at a time (at most the last block).
    let rest = bytes.get(bytes.len() / 6 * 6..).unwrap_or_default();
    let (blocks, tail) = encoded.split_at_mut((bytes.len() / 6 * 8).min(encoded.len()));
    for (k, eight) in blocks.chunks_exact_mut(8).enumerate() {
        let n = match bytes.get(k * 6..k * 6 + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
            Some(wide) => u64::from_be_bytes(wide) >> 16,
            None => bytes.get(k * 6..k * 6 + 6).unwrap_or_default().iter().fold(0u64, |n, &b| n << 8 | u64::from(b)),
        };
        let pair = |shift: u32| u64::from(PAIRS[(n >> shift) as usize & 0xfff]);
        let word = pair(36) | pair(24) << 16 | pair(12) << 32 | pair(0) << 48;
        eight.copy_from_slice(&word.to_le_bytes());
    }
    // The last 0–5 bytes: whole groups of three, then one or two bytes and their padding.
    for (three, four) in rest.chunks(3).zip(tail.chunks_mut(4)) {
        let n = three.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - three.len()));
        let [a, b, c, d] = [18, 12, 6, 0].map(|shift| ALPHABET[(n >> shift) as usize & 63]);
        let padded = [a, b, if three.len() > 1 { c } else { b'=' }, if three.len() > 2 { d } else { b'=' }];
        four.copy_from_slice(&padded);
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Every 12-bit value's two characters, the first in the low byte (little-endian order in the output).
static PAIRS: [u16; 4096] = {
    let mut pairs = [0u16; 4096];
    let mut i = 0;
    while i < 4096 {
        pairs[i] = ALPHABET[i >> 6] as u16 | (ALPHABET[i & 63] as u16) << 8;
        i += 1;
    }
    pairs
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(text: &str) -> Vec<u8> {
        let mut out = b"before".to_vec();
        write_str(&mut out, text);
        out
    }

    #[test]
    fn every_ascii_character_is_written_as_serde_json_writes_it() {
        for c in (0u8..0x80).map(char::from).chain(['é', '\u{2028}', '\u{9b}', '😀']) {
            for text in [c.to_string(), format!("ab{c}cd"), format!("{c}{c}")] {
                let mut expected = b"before".to_vec();
                expected.extend(serde_json::to_vec(&text).unwrap());
                assert_eq!(written(&text), expected, "{text:?}");
            }
        }
    }

    fn base64_written(bytes: &[u8]) -> Vec<u8> {
        let mut out = b"before".to_vec();
        write_base64(&mut out, bytes);
        out
    }

    fn base64_expected(bytes: &[u8]) -> Vec<u8> {
        use base64::Engine;
        format!("before\"{}\"", base64::engine::general_purpose::STANDARD.encode(bytes)).into_bytes()
    }

    /// Lengths through several 12-byte SIMD groups and every remainder after them and after the six-byte blocks,
    /// every byte value in each position; the table encoder alone on the same inputs.
    #[test]
    fn base64_is_the_standard_encoding_with_padding() {
        assert_eq!(base64_written(b""), b"before\"\"");
        assert_eq!(base64_written(b"f"), b"before\"Zg==\"");
        assert_eq!(base64_written(b"foobar"), b"before\"Zm9vYmFy\"");
        for len in 0..64 {
            for value in 0..=255u8 {
                let bytes: Vec<u8> = (0..len).map(|i| value.wrapping_add((i * 37) as u8)).collect();
                let expected = base64_expected(&bytes);
                assert_eq!(base64_written(&bytes), expected, "{bytes:?}");
                let mut scalar = vec![0; bytes.len().div_ceil(3) * 4];
                base64_scalar(&bytes, &mut scalar);
                assert_eq!(scalar, expected[7..expected.len() - 1], "{bytes:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(text in any::<String>()) {
            let mut expected = b"before".to_vec();
            expected.extend(serde_json::to_vec(&text).unwrap());
            prop_assert_eq!(written(&text), expected);
        }

        #[test]
        fn base64_is_written_as_the_base64_crate_encodes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(base64_written(&bytes), base64_expected(&bytes));
        }
    }
}
