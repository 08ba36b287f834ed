//! Default durations written once, as the text of their flag: clap takes the text as the flag's default
//! (`default_value = DEFAULT_…_TEXT`) and the code turns the same text into a `Duration` at compile time with
//! [`parse`], so the help text, the parsed default and the code's `Default` cannot drift apart.

use std::time::Duration;

/// `<digits><unit>` with unit `ms`, `s` or `m` (the forms the defaults use; the flags themselves accept more).
/// Anything else panics, which in a `const` is a build error, never a runtime one.
pub const fn parse(text: &str) -> Duration {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut n: u64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        n = n * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    assert!(i > 0, "a default duration starts with its number");
    match bytes.len() - i {
        1 if bytes[i] == b's' => Duration::from_secs(n),
        1 if bytes[i] == b'm' => Duration::from_secs(n * 60),
        2 if bytes[i] == b'm' && bytes[i + 1] == b's' => Duration::from_millis(n),
        _ => panic!("a default duration ends in ms, s or m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_the_defaults_use_as_the_flags_do() {
        for text in ["100ms", "0ms", "10s", "120s", "5m", "1m"] {
            assert_eq!(parse(text), humantime::parse_duration(text).unwrap(), "{text}");
            assert_eq!(Ok(parse(text)), crate::cli::go_flags::parse_duration(text), "{text}");
        }
    }

    #[test]
    #[should_panic(expected = "ends in ms, s or m")]
    fn refuses_other_units() {
        parse("1h");
    }
}
