//! Quoting for the commands this tool prints for people to paste (`trust-policy`, `doctor`, `oidc publish`): one
//! rule, so every printed command reads back the same in a POSIX shell.

/// A word a POSIX shell reads back unchanged. Left bare when every character is one the shell never splits or
/// expands (`%` included: it means a job only as a whole command word, never as an argument); otherwise
/// single-quoted, with each `'` written as `'\''`.
pub fn word(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::word;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(word("arn:aws:iam::111122223333:role/app"), "arn:aws:iam::111122223333:role/app");
        assert_eq!(word("https://oidc.example.com/id/ABC"), "https://oidc.example.com/id/ABC");
        assert_eq!(word("team/app-1_x.y,z+w=v@u"), "team/app-1_x.y,z+w=v@u");
        assert_eq!(word("/tmp/keys%20dir"), "/tmp/keys%20dir", "% is not special inside an argument");
    }

    #[test]
    fn anything_the_shell_would_split_or_expand_is_quoted() {
        assert_eq!(word(""), "''");
        assert_eq!(word("a b"), "'a b'");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word("team/*"), "'team/*'");
        assert_eq!(word("$HOME"), "'$HOME'");
        assert_eq!(word("~/keys"), "'~/keys'");
        assert_eq!(word("a;b"), "'a;b'");
        assert_eq!(word("x\ny"), "'x\ny'");
        assert_eq!(word("é"), "'é'");
    }
}
