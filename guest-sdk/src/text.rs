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

/// What an ASCII byte is to the tokenizer; every byte from 0x80 up starts a character
/// that needs decoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Separator,
    /// A letter or a digit.
    Word,
    NonAscii,
}

/// The class of each byte: one load per byte where range tests would be several.
const CLASSES: [Class; 256] = {
    let mut table = [Class::NonAscii; 256];
    let mut b = 0;
    while b < 0x80 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphanumeric() { Class::Word } else { Class::Separator };
        b += 1;
    }
    table
};

impl Iterator for Words<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let bytes = self.rest.as_bytes();
        // Skip separators.
        let mut i = 0;
        while i < bytes.len() {
            match CLASSES[usize::from(bytes[i])] {
                Class::Separator => i += 1,
                Class::Word => break,
                Class::NonAscii => {
                    let c = self.rest[i..].chars().next().expect("char boundary");
                    if c.is_alphanumeric() {
                        break;
                    }
                    i += c.len_utf8();
                }
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
            match CLASSES[usize::from(bytes[i])] {
                Class::Word => i += 1,
                Class::Separator => break,
                Class::NonAscii => {
                    let c = self.rest[i..].chars().next().expect("char boundary");
                    if !c.is_alphanumeric() {
                        break;
                    }
                    ascii = false;
                    i += c.len_utf8();
                }
            }
        }
        let word = &self.rest[start..i];
        self.rest = &self.rest[i..];
        Some(if ascii {
            // Lower-cased while copied, in one pass: `to_ascii_lowercase` copies (a
            // `memory.copy`, which wasmtime calls out for) and then lower-cases.
            let lower: Vec<u8> = word.bytes().map(|b| b.to_ascii_lowercase()).collect();
            // SAFETY: ASCII letters and digits only.
            unsafe { String::from_utf8_unchecked(lower) }
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
