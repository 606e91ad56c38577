//! Text helpers for jobs that tokenize lines, shared so every example splits words alike.

/// Splits `text` into words: maximal runs of characters for which
/// [`char::is_alphanumeric`] holds, each lower-cased with [`str::to_lowercase`].
///
/// One allocation per word (the returned `String`); ASCII words take a byte-wise fast path.
///
/// ```
/// let w: Vec<String> = eddy_sdk::text::words("Café, Über-naïve DON'T 42").collect();
/// assert_eq!(w, ["café", "über", "naïve", "don", "t", "42"]);
/// ```
pub fn words(text: &str) -> Words<'_> {
    Words { rest: text }
}

/// Iterator returned by [`words`].
#[derive(Debug, Clone)]
pub struct Words<'a> {
    rest: &'a str,
}

impl Iterator for Words<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let bytes = self.rest.as_bytes();
        // Skip separators.
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if b.is_ascii_alphanumeric() {
                    break;
                }
                i += 1;
            } else {
                let c = self.rest[i..].chars().next().expect("char boundary");
                if c.is_alphanumeric() {
                    break;
                }
                i += c.len_utf8();
            }
        }
        if i == bytes.len() {
            self.rest = "";
            return None;
        }
        // Take the word.
        let start = i;
        let mut ascii = true;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if !b.is_ascii_alphanumeric() {
                    break;
                }
                i += 1;
            } else {
                let c = self.rest[i..].chars().next().expect("char boundary");
                if !c.is_alphanumeric() {
                    break;
                }
                ascii = false;
                i += c.len_utf8();
            }
        }
        let word = &self.rest[start..i];
        self.rest = &self.rest[i..];
        Some(if ascii {
            word.to_ascii_lowercase()
        } else {
            word.to_lowercase()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    fn w(s: &str) -> Vec<String> {
        words(s).collect()
    }

    #[test]
    fn splits_and_lowercases() {
        assert_eq!(w("Hello, World! hello"), ["hello", "world", "hello"]);
        assert_eq!(w("  --  "), Vec::<String>::new());
        assert_eq!(w(""), Vec::<String>::new());
        assert_eq!(w("a1b2 x_y"), ["a1b2", "x", "y"]);
        assert_eq!(w("line\r\n"), ["line"]);
    }

    #[test]
    fn unicode() {
        assert_eq!(w("Café Über NAÏVE"), ["café", "über", "naïve"]);
        assert_eq!(w("«quoted»—dash…end"), ["quoted", "dash", "end"]);
        assert_eq!(w("ΣΑΣ"), ["σας"]); // final sigma, as str::to_lowercase does
        assert_eq!(w("日本語 テキスト"), ["日本語", "テキスト"]);
        assert_eq!(w("x\u{00a0}y"), ["x", "y"]); // no-break space separates
    }
}
