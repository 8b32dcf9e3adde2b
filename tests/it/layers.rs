//! One-way layers: every file of `src/` stands in one layer of [`LAYERS`]
//! and names only modules of its own layer or of the layers below it (the
//! tools: only the API and the formats). The table is the map of the crate;
//! a new file must be placed in it.
//!
//! Read from the source as text: every `crate::…` path, in a `use` or in
//! code, `super::…` and `self::…`, a child module's name, and in the
//! binaries `ifnet::…`. Comments, strings and `#[cfg(test)]` items are not
//! read: a unit test may set up what it needs from above (a driver's test
//! starts a kernel), as a crate's tests may depend on crates above it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Layer {
    name: &'static str,
    /// Files, or folders (ending in `/`) for every file under them; the
    /// longest match places a file.
    files: &'static [&'static str],
    /// The layers this one may use; `None`: its own and every one below.
    uses: Option<&'static [&'static str]>,
}

/// The layers, bottom to top.
const LAYERS: &[Layer] = &[
    // The kernel/user API: requests, replies, errno, flag constants, the
    // wire format, the `Ioctl` trait. And the log every layer writes to,
    // and the client's rights that host-side work runs with.
    Layer {
        name: "api",
        files: &["src/ioctl/", "src/log.rs", "src/cred.rs"],
        uses: None,
    },
    // Pure formats, read and written by the layers above and by the tools:
    // the shmif bus (with its fault catcher and wakeup watch), the TAP
    // offload header, tap's stream framing, pcap.
    Layer {
        name: "formats",
        files: &[
            "src/drivers/shmif/bus.rs",
            "src/drivers/shmif/fault.rs",
            "src/drivers/tap/framing.rs",
            "src/drivers/vxlan/header.rs",
            "src/offload.rs",
            "src/pcap.rs",
        ],
        uses: None,
    },
    // The data plane: ports, the frame type, the reactor.
    Layer {
        name: "data plane",
        files: &[
            "src/port.rs",
            "src/frame.rs",
            "src/reactor.rs",
            "src/reactor/",
        ],
        uses: None,
    },
    // The interface model and the driver interface: interfaces, classes,
    // the kernel environment and the hook drivers ask the kernel through.
    Layer {
        name: "interface model",
        files: &["src/ifnet.rs", "src/cloner/"],
        uses: None,
    },
    // The IP presence of an interface: ARP, NDP, echo, DAD; and routing:
    // the table and the forwarding path between interfaces.
    Layer {
        name: "inet",
        files: &["src/inet/", "src/route/"],
        uses: None,
    },
    // The drivers, and the driver set (`drivers::cloners`).
    Layer {
        name: "drivers",
        files: &["src/drivers/"],
        uses: None,
    },
    // The interface table and the request dispatcher. It names no driver:
    // it is given its classes.
    Layer {
        name: "kernel",
        files: &["src/kernel.rs"],
        uses: Some(&[
            "api",
            "formats",
            "data plane",
            "interface model",
            "inet",
            "kernel",
        ]),
    },
    // What gives the kernel its drivers: the daemon's server, and the
    // GENERIC kernel that tests and programs start in-process.
    Layer {
        name: "daemon",
        files: &["src/server.rs", "src/service.rs", "src/generic.rs"],
        uses: None,
    },
    // The tools and their binaries talk to a kernel through the API only.
    Layer {
        name: "tools",
        files: &[
            "src/ifconfig/",
            "src/brconfig/",
            "src/ping.rs",
            "src/client.rs",
            "src/client/",
            "src/shmifdump.rs",
            "src/inspect/",
            "src/libxo.rs",
            "src/rcnet/",
            "src/bin/ifnet-tools.rs",
            "src/bin/ifconfig.rs",
            "src/bin/brconfig.rs",
            "src/bin/ifping.rs",
            "src/bin/shmifdump.rs",
        ],
        uses: Some(&["api", "formats", "tools"]),
    },
    // The crate root and the daemon's binary.
    Layer {
        name: "top",
        files: &["src/lib.rs", "src/bin/ifnetd.rs"],
        uses: None,
    },
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, as `src/…` paths.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The index in [`LAYERS`] of `file`'s layer.
fn layer_of(file: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, l) in LAYERS.iter().enumerate() {
        for &f in l.files {
            let hit = if f.ends_with('/') {
                file.starts_with(f)
            } else {
                file == f
            };
            if hit && best.is_none_or(|(len, _)| f.len() > len) {
                best = Some((f.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

fn may_use(from: usize, to: usize) -> bool {
    match LAYERS[from].uses {
        Some(names) => names.contains(&LAYERS[to].name),
        None => to <= from,
    }
}

/// The module path of a library file (`src/drivers/tap/mod.rs` ->
/// `drivers::tap`); `None` for a binary, a crate of its own.
fn module_path(file: &str) -> Option<Vec<String>> {
    let rel = file.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rel.starts_with("bin/") {
        return None;
    }
    let mut path: Vec<String> = rel.split('/').map(String::from).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    Some(path)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The tokens of Rust source that matter for paths; comments, strings and
/// character literals are left out.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Skip a string whose opening quote is at `i`, with `hashes` for a raw one.
    let skip_string = |mut i: usize, raw: bool, hashes: usize| -> usize {
        i += 1;
        while i < c.len() {
            if !raw && c[i] == '\\' {
                i += 2;
                continue;
            }
            if c[i] == '"'
                && c[i + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|&&h| h == '#')
                    .count()
                    == hashes
            {
                return i + 1 + hashes;
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i, false, 0);
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{..}'), else a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' || ch.is_ascii_digit() {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings: r"…", r#"…"#, br"…".
            if matches!(word.as_str(), "r" | "br") {
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + hashes) == Some(&'"') {
                    i = skip_string(i + hashes, true, hashes);
                    continue;
                }
            }
            if word == "b" && c.get(i) == Some(&'\'') {
                continue; // b'x': the quote is read next
            }
            if !ch.is_ascii_digit() {
                out.push(Tok::Ident(word));
            }
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    out
}

fn is_ident(t: Option<&Tok>, s: &str) -> bool {
    matches!(t, Some(Tok::Ident(w)) if w == s)
}

/// Leave out every item under `#[cfg(test)]`.
fn without_tests(toks: Vec<Tok>) -> Vec<Tok> {
    let cfg_test: Vec<Tok> = tokens("#[cfg(test)]");
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i..].starts_with(&cfg_test) {
            // The item ends at a `;` outside brackets or at its body's `}`.
            i += cfg_test.len();
            let mut depth = 0i32;
            while i < toks.len() {
                match toks[i] {
                    Tok::Punct('(' | '[') => depth += 1,
                    Tok::Punct(')' | ']') => depth -= 1,
                    Tok::Punct(';') if depth == 0 => break,
                    Tok::Punct('{') if depth == 0 => {
                        let mut braces = 0;
                        while i < toks.len() {
                            match toks[i] {
                                Tok::Punct('{') => braces += 1,
                                Tok::Punct('}') => braces -= 1,
                                _ => {}
                            }
                            if braces == 0 {
                                break;
                            }
                            i += 1;
                        }
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// The paths of the use tree or path expression at `toks[*i]`, each as
/// its segments (`crate::{a, b::C}` -> `crate::a`, `crate::b::C`).
fn use_tree(toks: &[Tok], i: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(w)) => {
                prefix.push(w.clone());
                *i += 1;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                let mut paths = Vec::new();
                while *i < toks.len() && toks[*i] != Tok::Punct('}') {
                    for p in use_tree(toks, i) {
                        paths.push([prefix.clone(), p].concat());
                    }
                    // Past `as name` to the next `,` or the `}`.
                    while *i < toks.len() && !matches!(toks[*i], Tok::Punct(',' | '}')) {
                        *i += 1;
                    }
                    if toks.get(*i) == Some(&Tok::Punct(',')) {
                        *i += 1;
                    }
                }
                *i += 1;
                return paths;
            }
            _ => return vec![prefix],
        }
        if toks.get(*i) != Some(&Tok::PathSep) {
            return vec![prefix];
        }
        *i += 1;
    }
}

/// A path named by a file, resolved to the library's module path (the
/// longest prefix that is a file decides, so items count as their module).
struct Use {
    path: Vec<String>,
    text: String,
}

/// Every module path `file` names.
fn uses(file: &str, src: &str) -> Vec<Use> {
    let toks = without_tests(tokens(src));
    let here = module_path(file);
    // Child modules declared here (`mod bus;`) may be named bare.
    let children: Vec<String> = toks
        .windows(3)
        .filter(|w| is_ident(Some(&w[0]), "mod") && w[2] == Tok::Punct(';'))
        .filter_map(|w| match &w[1] {
            Tok::Ident(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    // Inline modules (`mod field { … }`) and the brace depth they open at.
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
                continue;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                i += 1;
                continue;
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(n)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((n.clone(), depth));
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        let first = match &toks[i] {
            Tok::Ident(w) if i == 0 || toks[i - 1] != Tok::PathSep => w.clone(),
            _ => {
                i += 1;
                continue;
            }
        };
        let base: Option<Vec<String>> = match (&here, first.as_str()) {
            (None, "ifnet") => Some(Vec::new()),
            (Some(_), "crate") => Some(Vec::new()),
            (Some(h), "self" | "super") => {
                Some([h.clone(), inline.iter().map(|(n, _)| n.clone()).collect()].concat())
            }
            (Some(h), n) if inline.is_empty() && children.iter().any(|c| c == n) => Some(h.clone()),
            _ => None,
        };
        let Some(base) = base else {
            i += 1;
            continue;
        };
        if toks.get(i + 1) != Some(&Tok::PathSep) {
            i += 1;
            continue;
        }
        let start = i;
        for p in use_tree(&toks, &mut i) {
            let text = p.join("::");
            let mut path = base.clone();
            let mut segs = p.into_iter().peekable();
            if matches!(first.as_str(), "ifnet" | "crate" | "self") {
                segs.next();
            }
            while segs.peek().is_some_and(|s| s == "super") {
                segs.next();
                path.pop();
            }
            let rest: Vec<String> = segs.filter(|s| s != "self").collect();
            path.extend(rest);
            out.push(Use { path, text });
        }
        i = i.max(start + 1);
    }
    out
}

/// The file a module path lands in: its longest prefix that is a file.
fn file_of(path: &[String], files: &BTreeMap<Vec<String>, String>) -> String {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]))
        .cloned()
        .unwrap_or_else(|| "src/lib.rs".into())
}

#[test]
fn every_file_has_a_layer() {
    let lost: Vec<String> = sources()
        .into_iter()
        .filter(|f| layer_of(f).is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "place these files in a layer of tests/layers.rs: {lost:?}"
    );
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let sources = sources();
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .filter_map(|f| Some((module_path(f)?, f.clone())))
        .collect();
    let mut wrong = Vec::new();
    for file in &sources {
        let Some(from) = layer_of(file) else { continue };
        let src = std::fs::read_to_string(root().join(file)).unwrap();
        for u in uses(file, &src) {
            let target = file_of(&u.path, &files);
            let Some(to) = layer_of(&target) else {
                continue;
            };
            if !may_use(from, to) {
                wrong.push(format!(
                    "{file} ({}) uses {} ({target}, {})",
                    LAYERS[from].name, u.text, LAYERS[to].name
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "uses of a layer above:\n{}",
        wrong.join("\n")
    );
}

/// The reader finds paths in every shape the crate writes them, and none
/// in comments, strings or unit tests.
#[test]
fn paths_are_read() {
    let src = r##"
        use crate::ioctl::{self, Errno, wire::{encode as enc}};
        use super::fault::Registration;
        mod bus;
        // crate::kernel in a comment
        /* crate::server, /* nested */ crate::client */
        fn f() -> Vec<u8> {
            let s = "crate::shmifdump"; let r = r#"crate::ping "#; let c = '"';
            crate::port::is_multicast(&m); bus::Bus::attach(p); let _: &'static str = "";
            Vec::<u8>::new()
        }
        mod inner { use super::super::pcap; }
        #[cfg(test)]
        mod tests { use crate::Kernel; }
        #[cfg(test)]
        use crate::generic;
    "##;
    let got: Vec<String> = uses("src/drivers/shmif/mod.rs", src)
        .into_iter()
        .map(|u| u.path.join("::"))
        .collect();
    assert_eq!(
        got,
        [
            "ioctl",
            "ioctl::Errno",
            "ioctl::wire::encode",
            "drivers::fault::Registration",
            "port::is_multicast",
            "drivers::shmif::bus::Bus::attach",
            "drivers::pcap",
        ]
    );
    let bin: Vec<String> = uses("src/bin/x.rs", "use ifnet::{kernel::Kernel, log};")
        .into_iter()
        .map(|u| u.path.join("::"))
        .collect();
    assert_eq!(bin, ["kernel::Kernel", "log"]);
}

#[test]
fn the_map_reads_as_documented() {
    let tools = LAYERS.iter().position(|l| l.name == "tools").unwrap();
    let kernel = LAYERS.iter().position(|l| l.name == "kernel").unwrap();
    assert!(!may_use(tools, kernel));
    assert_eq!(layer_of("src/ifconfig/parse.rs"), Some(tools));
    assert_eq!(layer_of("src/drivers/shmif/bus.rs"), Some(1));
    let drivers = LAYERS.iter().position(|l| l.name == "drivers").unwrap();
    assert_eq!(layer_of("src/drivers/shmif/mod.rs"), Some(drivers));
    assert!(!may_use(kernel, drivers));
}
