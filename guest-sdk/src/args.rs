//! Job arguments, parsed the way Flink's `ParameterTool.fromArgs` does, so job code reads
//! `--input FILE` the same in the planner and in every operator instance.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed job arguments: `--key value`, `--key=value` and bare `--flag` (value `"true"`).
///
/// Tokens that are neither options nor option values are kept, in order, in
/// [`Args::positional`]. A later occurrence of an option overrides an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    options: HashMap<String, String>,
    positional: Vec<String>,
}

/// Whether `token` names an option (`--name` or `-name`) rather than being a value.
/// Negative numbers such as `-5` are values, as in Flink.
fn option_name(token: &str) -> Option<&str> {
    let name = token
        .strip_prefix("--")
        .or_else(|| token.strip_prefix('-'))?;
    if name.is_empty() || token.parse::<f64>().is_ok() {
        return None;
    }
    Some(name)
}

impl Args {
    /// Parses argument tokens (without a program name).
    pub fn parse<I, S>(tokens: I) -> Args
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tokens: Vec<String> = tokens.into_iter().map(Into::into).collect();
        let mut args = Args::default();
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            i += 1;
            if token == "--" {
                // Everything after a bare `--` is positional, as with most CLIs.
                args.positional.extend(tokens[i..].iter().cloned());
                break;
            }
            let Some(name) = option_name(token) else {
                args.positional.push(token.clone());
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                args.options.insert(k.to_string(), v.to_string());
            } else if i < tokens.len() && option_name(&tokens[i]).is_none() && tokens[i] != "--" {
                args.options.insert(name.to_string(), tokens[i].clone());
                i += 1;
            } else {
                args.options.insert(name.to_string(), "true".to_string());
            }
        }
        args
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// The value of `--name`, or `default`.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The value of `--name`, or the error `missing required argument --name` that the
    /// planner reports to the user.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing required argument --{name}"))
    }

    /// `--name` parsed as `T`, or `default` when absent; an unparsable value is an error
    /// rather than silently falling back, so typos surface at plan time.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| format!("invalid value '{v}' for --{name}: {e}")),
        }
    }

    /// `--name` parsed as `T`; absent or unparsable is an error.
    pub fn parse_required<T>(&self, name: &str) -> Result<T, String>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let v = self.required(name)?;
        v.parse()
            .map_err(|e| format!("invalid value '{v}' for --{name}: {e}"))
    }

    /// Whether `--name` was given (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }

    /// Tokens that were not options or option values, in order.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = Args::parse([
            "pos",
            "--input",
            "in.txt",
            "--output=out",
            "--verbose",
            "--n",
            "-5",
            "--x=a=b",
            "-p",
            "3",
        ]);
        assert_eq!(a.get("input"), Some("in.txt"));
        assert_eq!(a.get("output"), Some("out"));
        assert_eq!(a.get("verbose"), Some("true"));
        assert!(a.has("verbose"));
        assert_eq!(a.parse_or::<i64>("n", 0), Ok(-5));
        assert_eq!(a.get("x"), Some("a=b"));
        assert_eq!(a.get("p"), Some("3"));
        assert_eq!(a.positional(), ["pos"]);
    }

    #[test]
    fn flag_before_option_and_at_end() {
        let a = Args::parse(["--dry", "--port", "9", "--last"]);
        assert_eq!(a.get("dry"), Some("true"));
        assert_eq!(a.parse_or("port", 1u16), Ok(9));
        assert_eq!(a.get("last"), Some("true"));
    }

    #[test]
    fn errors_and_defaults() {
        let a = Args::parse(["--port", "seventy"]);
        assert_eq!(
            a.required("input"),
            Err("missing required argument --input".to_string())
        );
        assert_eq!(a.get_or("host", "localhost"), "localhost");
        let e = a.parse_or::<u16>("port", 7777).unwrap_err();
        assert!(e.starts_with("invalid value 'seventy' for --port"), "{e}");
        assert_eq!(
            Args::parse(Vec::<String>::new()).parse_or("port", 7777u16),
            Ok(7777)
        );
    }

    #[test]
    fn double_dash_and_override() {
        let a = Args::parse(["--k", "1", "--k", "2", "--", "--not-an-option"]);
        assert_eq!(a.get("k"), Some("2"));
        assert_eq!(a.positional(), ["--not-an-option"]);
    }
}
