//! The one POSIX shell quoter. Every script hermetic runs in a container is
//! assembled from words quoted here, so a path with a space, a quote or a
//! `$ORIGIN` in it reaches the command as one literal word.

/// Quotes a word for `sh`, leaving words of plain characters as they are
/// (`libyaml-dev`, `/opt/python/cp311-cp311`), so scripts stay readable.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@".contains(&b))
    {
        word.to_string()
    } else {
        quote_always(word)
    }
}

/// The words, each [`quote`]d, joined by spaces: a command line or an
/// argument list for a script.
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for `sh` in single quotes whatever it holds (`'` written
/// as `'\''`): for generated scripts whose every argument is data, such as
/// the repair script, where uniform quoting makes a review easy.
pub fn quote_always(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_words_are_each_quoted() {
        assert_eq!(
            join(["sha256sum", "a b", "it's"]),
            "sha256sum 'a b' 'it'\\''s'"
        );
        assert_eq!(join(Vec::<String>::new()), "");
    }

    #[test]
    fn plain_words_stay_and_others_are_quoted() {
        assert_eq!(quote("libyaml-dev"), "libyaml-dev");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$ORIGIN/../lib"), "'$ORIGIN/../lib'");
        assert_eq!(quote_always("lib"), "'lib'");
        assert_eq!(quote_always("it's"), "'it'\\''s'");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        for word in ["plain", "a b", "it's", "$HOME", "`id`", "x\ny", "-n", "\\"] {
            for quoted in [quote(word), quote_always(word)] {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("printf %s {quoted}"))
                    .output()
                    .unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), word, "{quoted}");
            }
        }
    }
}
