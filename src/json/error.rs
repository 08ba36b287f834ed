//! Why a document was refused, with the byte offset where the reader noticed.

use std::fmt;

use super::read::MAX_DEPTH;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unexpected end of input while parsing {what} at byte {at}")]
    Eof { what: &'static str, at: usize },
    #[error("expected {what} at byte {at}")]
    Expected { what: &'static str, at: usize },
    #[error("trailing comma at byte {at}")]
    TrailingComma { at: usize },
    #[error("trailing characters at byte {at}")]
    TrailingCharacters { at: usize },
    #[error("invalid escape at byte {at}")]
    InvalidEscape { at: usize },
    #[error("unpaired surrogate in a \\u escape at byte {at}")]
    LoneSurrogate { at: usize },
    #[error("control character (\\u0000-\\u001F) in a string at byte {at}")]
    ControlCharacter { at: usize },
    #[error("invalid UTF-8 in the string at byte {at}")]
    InvalidUtf8 { at: usize },
    #[error("invalid number at byte {at}")]
    InvalidNumber { at: usize },
    #[error("number out of range at byte {at}")]
    NumberOutOfRange { at: usize },
    #[error("more than {} nested arrays and objects at byte {at}", MAX_DEPTH - 1)]
    TooDeep { at: usize },
    /// What the target type's `Deserialize` refused (a value of the wrong kind, a missing or duplicate field), at the
    /// start of the value it was given.
    #[error("{message}{}", AtByte(*.at))]
    Data { message: String, at: Option<usize> },
}

impl Error {
    /// Gives an error from a `Deserialize` impl the offset of the value it was about, unless it has one.
    pub(super) fn at(self, offset: usize) -> Self {
        match self {
            Error::Data { message, at: None } => Error::Data { message, at: Some(offset) },
            other => other,
        }
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error::Data { message: message.to_string(), at: None }
    }
}

struct AtByte(Option<usize>);

impl fmt::Display for AtByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, " at byte {at}"),
            None => Ok(()),
        }
    }
}
