//! `--libxo`: the output switch of FreeBSD's libxo(3), as the tools take
//! it (`--libxo json`, `--libxo=json`, `--libxo json,pretty`). Only the
//! text and JSON encodings exist here; the tools build a JSON value and
//! [`Output::emit`] writes it.

/// How a tool prints what it shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// The tool's own text, byte for byte as NetBSD prints it.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json { pretty: bool },
}

impl Output {
    pub fn is_json(self) -> bool {
        matches!(self, Output::Json { .. })
    }

    /// Write `v` as the document, with a final newline.
    pub fn emit(self, out: &mut dyn std::io::Write, v: &serde_json::Value) {
        let s = match self {
            Output::Json { pretty: true } => serde_json::to_string_pretty(v),
            _ => serde_json::to_string(v),
        };
        if let Ok(s) = s {
            let _ = writeln!(out, "{s}");
        }
    }
}

/// Take every `--libxo` option out of `args` (as xo_parse_args does,
/// before the tool's own getopt). Returns the encoding asked for and the
/// remaining arguments; an encoding other than text or JSON, or a
/// `--libxo` without its value, is an error to report.
pub fn take_args(args: &[String]) -> Result<(Output, Vec<String>), String> {
    let mut out = Output::Text;
    let mut rest = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.by_ref().cloned());
            break;
        }
        let spec = if a == "--libxo" {
            match it.next() {
                Some(v) => v.as_str(),
                None => return Err("--libxo: missing argument".into()),
            }
        } else if let Some(v) = a.strip_prefix("--libxo=").or(a.strip_prefix("--libxo:")) {
            v
        } else {
            rest.push(a.clone());
            continue;
        };
        out = parse_spec(spec)?;
    }
    Ok((out, rest))
}

/// `json,pretty`, `text`, `json`…: an encoding and its modifiers.
fn parse_spec(spec: &str) -> Result<Output, String> {
    let mut json = false;
    let mut pretty = false;
    for word in spec.split(',').filter(|w| !w.is_empty()) {
        match word {
            "json" | "J" => json = true,
            "text" | "T" => json = false,
            "pretty" | "P" => pretty = true,
            // Modifiers that change nothing in what we print.
            "warn" | "W" | "color" | "no-color" | "underscores" | "dashes" | "flush"
            | "flush-line" | "no-locale" | "no-top" | "not-first" | "keys" | "units"
            | "no-humanize" => {}
            "xml" | "X" | "html" | "H" => {
                return Err(format!(
                    "--libxo: {word}: encoding not supported (text, json)"
                ));
            }
            w => return Err(format!("--libxo: unknown option '{w}'")),
        }
    }
    Ok(if json {
        Output::Json { pretty }
    } else {
        Output::Text
    })
}

/// A flags word as JSON: its number and the names of its bits.
pub fn flags(
    value: u32,
    names: impl IntoIterator<Item = (u32, &'static str)>,
) -> serde_json::Value {
    let names: Vec<&str> = names
        .into_iter()
        .filter(|(b, _)| value & b != 0)
        .map(|(_, n)| n)
        .collect();
    serde_json::json!({ "value": value, "names": names })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn forms() {
        let j = Output::Json { pretty: false };
        let p = Output::Json { pretty: true };
        assert_eq!(
            take_args(&args(&["--libxo", "json", "-a"])).unwrap(),
            (j, args(&["-a"]))
        );
        assert_eq!(take_args(&args(&["-a", "--libxo=json"])).unwrap().0, j);
        assert_eq!(take_args(&args(&["--libxo", "json,pretty"])).unwrap().0, p);
        assert_eq!(take_args(&args(&["--libxo:J,P"])).unwrap().0, p);
        assert_eq!(take_args(&args(&["--libxo=text"])).unwrap().0, Output::Text);
        assert!(take_args(&args(&["--libxo"])).is_err());
        assert!(take_args(&args(&["--libxo=xml"])).is_err());
        assert_eq!(
            take_args(&args(&["--", "--libxo=json"])).unwrap(),
            (Output::Text, args(&["--", "--libxo=json"]))
        );
    }

    #[test]
    fn flag_words() {
        let v = flags(5, [(1, "A"), (2, "B"), (4, "C")]);
        assert_eq!(v, serde_json::json!({"value": 5, "names": ["A", "C"]}));
    }
}
