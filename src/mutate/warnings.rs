//! Warnings for the user, bounded: a hostile pod must not turn a handful of checks into a megabyte of answer.

use std::borrow::Cow;
use std::fmt;

/// At most this many warnings per answer; the last one says how many more there were.
pub const MAX_WARNINGS: usize = 16;
/// A value quoted in a warning is cut to this many characters.
const MAX_SHOWN_CHARS: usize = 100;

/// Collects warnings up to [`MAX_WARNINGS`], counting the rest.
#[derive(Debug, Default)]
pub struct Warnings {
    list: Vec<String>,
    dropped: usize,
}

impl Warnings {
    pub fn push(&mut self, warning: String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(warning);
        } else {
            self.dropped += 1;
        }
    }

    pub fn extend(&mut self, warnings: impl IntoIterator<Item = String>) {
        for warning in warnings {
            self.push(warning);
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_vec(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list.push(format!("{} more warning(s) not shown", self.dropped));
        }
        self.list
    }
}

/// A value from the input as a warning quotes it: at most [`MAX_SHOWN_CHARS`] characters, then `…`.
pub fn shown(value: &str) -> Shown<'_> {
    Shown(value)
}

pub struct Shown<'a>(&'a str);

impl<'a> Shown<'a> {
    /// The shown text without the formatting machinery (this runs on every request): borrowed unless it is cut.
    pub fn to_cow(&self) -> Cow<'a, str> {
        let (text, cut) = self.parts();
        if !cut {
            return Cow::Borrowed(text);
        }
        let mut owned = String::with_capacity(text.len() + 3);
        owned.push_str(text);
        owned.push('…');
        Cow::Owned(owned)
    }

    fn parts(&self) -> (&'a str, bool) {
        match self.0.char_indices().nth(MAX_SHOWN_CHARS) {
            Some((cut, _)) => (&self.0[..cut], true),
            None => (self.0, false),
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = self.parts();
        f.write_str(text)?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = self.parts();
        fmt::Debug::fmt(text, f)?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_number_and_length() {
        let mut w = Warnings::default();
        for i in 0..100 {
            w.push(format!("w{i}"));
        }
        let list = w.into_vec();
        assert_eq!(list.len(), MAX_WARNINGS + 1);
        assert_eq!(list[MAX_WARNINGS], "84 more warning(s) not shown");
        let long = "é".repeat(1000);
        assert_eq!(shown(&long).to_string().chars().count(), MAX_SHOWN_CHARS + 1);
        assert_eq!(format!("{:?}", shown("a\"b")), r#""a\"b""#);
        assert_eq!(shown(&long).to_cow(), shown(&long).to_string());
        assert_eq!(shown("short").to_cow(), "short");
    }
}
