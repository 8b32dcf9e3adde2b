//! A line split into words as sh(1) would, without expanding anything:
//! blanks separate words, '…' and "…" quote, a backslash escapes the next
//! character, and `#` at the start of a word begins a comment. (NetBSD's
//! rc.d/network leaves the words to the shell; quoting lets a description
//! hold blanks.)

/// The words of `line`, or why it cannot be split (an open quote).
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("a backslash ends the line".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A word as [`split`] reads it back: bare when it is plain, single
/// quotes otherwise.
pub fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/,+=@%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            split("inet 10.0.0.1/24  up # comment").unwrap(),
            ["inet", "10.0.0.1/24", "up"]
        );
        assert_eq!(
            split(r#"description 'a b' "c \"d\"" e\ f x#y"#).unwrap(),
            ["description", "a b", "c \"d\"", "e f", "x#y"]
        );
        assert_eq!(split("''").unwrap(), [""]);
        assert!(split("descr 'open").is_err());
        assert!(split("descr \"open").is_err());
        assert!(split("x \\").is_err());
    }

    #[test]
    fn quoting_round_trips() {
        for w in ["plain", "a b", "it's", "", "é", "$HOME", "x\\y", "#no"] {
            assert_eq!(split(&quote(w)).unwrap(), [w], "{w}");
        }
    }
}
