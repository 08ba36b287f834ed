//! Building JSON Patch operations at precise, escaped JSON pointers.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::Value;

/// One step of a JSON pointer; keys are escaped (`~0`, `~1`) when the pointer is built.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
    /// `-`: append to an array.
    End,
}

#[derive(Debug, Default)]
pub(crate) struct PatchBuilder {
    ops: Vec<PatchOperation>,
}

impl PatchBuilder {
    /// `add` is the only operation we ever emit: we never replace or remove what the pod already has.
    pub(crate) fn add(&mut self, steps: &[Step<'_>], value: Value) {
        self.ops.push(PatchOperation::Add(AddOperation { path: pointer(steps), value }));
    }

    pub(crate) fn finish(self) -> Patch {
        Patch(self.ops)
    }
}

pub(crate) fn pointer(steps: &[Step<'_>]) -> PointerBuf {
    // Written out directly: building it token by token allocates per token, and this is on every request.
    let mut text = String::with_capacity(64);
    for step in steps {
        text.push('/');
        match step {
            Step::Key(key) if !key.contains(['~', '/']) => text.push_str(key),
            Step::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => text.push_str("~0"),
                        '/' => text.push_str("~1"),
                        c => text.push(c),
                    }
                }
            }
            Step::Index(index) => {
                use std::fmt::Write;
                let _ = write!(text, "{index}");
            }
            Step::End => text.push('-'),
        }
    }
    // Escaped above, so parsing cannot fail; the token-by-token build is the fallback all the same.
    PointerBuf::parse(text).unwrap_or_else(|_| {
        PointerBuf::from_tokens(steps.iter().map(|step| match step {
            Step::Key(key) => Token::new(*key),
            Step::Index(index) => Token::new(index.to_string()),
            Step::End => Token::new("-"),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped() {
        let p = pointer(&[Step::Key("metadata"), Step::Key("labels"), Step::Key("eks.amazonaws.com/pod~identity")]);
        assert_eq!(p.as_str(), "/metadata/labels/eks.amazonaws.com~1pod~0identity");
    }

    #[test]
    fn indices_and_end() {
        let p = pointer(&[Step::Key("spec"), Step::Key("containers"), Step::Index(3), Step::Key("env"), Step::End]);
        assert_eq!(p.as_str(), "/spec/containers/3/env/-");
    }
}
