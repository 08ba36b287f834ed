//! A JSON reader for the request path: a `serde::Deserializer` over borrowed bytes that reads what the target type
//! asks for and skips everything else at memory speed. Pure: no I/O.
//!
//! Why not serde_json there: most of an AdmissionReview is what the rules never read (`managedFields`, probes,
//! resources, …). serde_json turns a skipped value into tokens and validates each one; this reader skips a whole
//! value with one structural scan, and reads strings with one pass that finds the closing quote and notes whether
//! anything needs more care (an escape, a non-ASCII byte).
//!
//! What it accepts:
//! - **Values that are read** (by `deserialize_any`, `str`, `map`, `struct`, `seq`, `option`, `bool`, numbers, …):
//!   JSON exactly as serde_json reads it, and handed to visitors with the same calls: strings borrowed when they hold
//!   no escape (`visit_borrowed_str`), unescaped into a `String` otherwise (`visit_string`; surrogate pairs joined,
//!   unpaired surrogates refused); raw control characters and invalid UTF-8 refused; non-negative integers as u64,
//!   negative ones as i64, anything else (fractions, exponents, beyond 64 bits, `-0`) as f64 (`str::parse`; out of
//!   range refused); `struct` also accepts an array of the fields in order, enums are externally tagged.
//! - **Values that are skipped** (`deserialize_ignored_any`, which serde uses for unknown fields and `IgnoredAny`):
//!   the scan checks only what it needs to find the value's end — brackets balanced and of matching kinds, strings
//!   terminated, a `\` escaping the next byte (outside strings too, where valid JSON has none) — and is lenient about
//!   the rest: inside a skipped value it does not check number syntax, literals, separators (`,` `:`), which escape
//!   letters are used, control characters or UTF-8 in strings; a skipped key is not validated either. So a document that serde_json refuses may be accepted
//!   when its fault lies in a skipped value, while a document that serde_json accepts decodes to the same result
//!   (tests/json_differential.rs).
//! - Differences at the edges no caller here uses: object keys are always handed to visitors as strings (serde_json
//!   also parses `"1"` for an integer key), 128-bit integers beyond 64 bits are read as floats, and
//!   `deserialize_bytes` gives a string's validated UTF-8 bytes.
//!
//! Bounded: arrays and objects that are read (each level a visitor's stack frame) nest at most `MAX_DEPTH - 1`
//! (127) deep, serde_json's limit. The skipper (`skip.rs`, 64 bytes at a time) does not recurse — a depth counter
//! and the closing bracket expected at each level, checked for the first 128 levels of a skipped value and only
//! counted beyond — so, like serde_json's, it takes skipped values of any depth in time linear in their length and
//! constant memory. Nothing is allocated
//! but the strings that are read and hold escapes. Errors carry the byte offset where they were noticed.

mod de;
mod error;
mod read;
mod skip;
mod write;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use read::{Deserializer, MAX_DEPTH};
pub use write::{base64_string_len, write_base64, write_str};

/// Decodes `T` from the whole of `input` (whitespace may follow the value, nothing else).
pub fn from_slice<'de, T: serde::Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let mut deserializer = Deserializer::new(input);
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}
