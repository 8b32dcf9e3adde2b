//! sysctl(8) for the knobs ifnet's behaviour depends on: read, and set
//! with -w where the kernel has them (sbin/sysctl/sysctl.c's output and
//! messages: `name = value`, `name: old -> new`, and a name it does not
//! know is "invalid" at the level where the lookup fails).

use super::{getopt, usage};
use crate::ioctl::{Errno, Ioctl, Knobs, Reply, Request};
use std::io::Write;

pub const USAGE: &str = "\
usage:\tsysctl [-dneq] [-x[x]|-r] variable ...
\tsysctl [-ne] [-q] -w variable=value ...
\tsysctl [-dne] -a
\tsysctl [-dne] -A
\tsysctl [-ne] -M
\tsysctl [-dne] [-q] -f file
";

/// Writes a knob's new value into the knobs.
type Setter = fn(&mut Knobs, i64) -> Result<(), Errno>;

/// One knob: its MIB name, how to read it, how to set it (None: read-only
/// here; the kernel has no way to change it).
struct Node {
    name: &'static str,
    get: fn(&Knobs) -> i64,
    set: Option<Setter>,
}

fn count(v: i64) -> Result<u8, Errno> {
    u8::try_from(v).map_err(|_| Errno::EINVAL)
}

/// The tree, in NetBSD's order (sysctl -a sorts nothing: creation order).
const NODES: &[Node] = &[
    Node {
        name: "net.inet.ip.forwarding",
        get: |k| i64::from(k.ip_forwarding),
        set: Some(|k, v| {
            k.ip_forwarding = v != 0;
            Ok(())
        }),
    },
    Node {
        name: "net.inet.ip.redirect",
        get: |k| i64::from(k.ip_redirect),
        set: Some(|k, v| {
            k.ip_redirect = v != 0;
            Ok(())
        }),
    },
    Node {
        name: "net.inet.ip.ttl",
        get: |_| 64,
        set: None,
    },
    Node {
        name: "net.inet.ip.forwsrcrt",
        get: |k| i64::from(k.ip_forwsrcrt),
        set: Some(|k, v| {
            k.ip_forwsrcrt = v != 0;
            Ok(())
        }),
    },
    Node {
        name: "net.inet.ip.allowsrcrt",
        get: |k| i64::from(k.ip_allowsrcrt),
        set: Some(|k, v| {
            k.ip_allowsrcrt = v != 0;
            Ok(())
        }),
    },
    Node {
        name: "net.inet.ip.dad_count",
        get: |k| i64::from(k.ip_dad_count),
        set: Some(|k, v| {
            k.ip_dad_count = count(v)?;
            Ok(())
        }),
    },
    Node {
        name: "net.inet6.ip6.forwarding",
        get: |k| i64::from(k.ip6_forwarding),
        set: Some(|k, v| {
            k.ip6_forwarding = v != 0;
            Ok(())
        }),
    },
    Node {
        name: "net.inet6.ip6.hlim",
        get: |_| 64,
        set: None,
    },
    Node {
        name: "net.inet6.ip6.accept_rtadv",
        get: |_| 0,
        set: None,
    },
    Node {
        name: "net.inet6.ip6.dad_count",
        get: |k| i64::from(k.ip6_dad_count),
        set: Some(|k, v| {
            k.ip6_dad_count = count(v)?;
            Ok(())
        }),
    },
    Node {
        name: "net.inet6.ip6.auto_linklocal",
        get: |k| i64::from(k.auto_linklocal),
        set: Some(|k, v| {
            k.auto_linklocal = v != 0;
            Ok(())
        }),
    },
];

const LEVELS: [&str; 8] = [
    "top", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
];

#[derive(Default)]
struct Opts {
    n: bool,
    q: bool,
    w: bool,
    a: bool,
}

pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Ok((opts, rest)) = getopt(args, "AaeMnqw") else {
        return usage(err, USAGE);
    };
    let mut o = Opts::default();
    for (c, _) in opts {
        match c {
            'A' | 'a' => o.a = true,
            'e' | 'M' => {}
            'n' => o.n = true,
            'q' => o.q = true,
            'w' => o.w = true,
            _ => return usage(err, USAGE),
        }
    }
    if o.a != rest.is_empty() {
        return usage(err, USAGE);
    }
    let mut knobs = match ctl.ioctl(Request::GetKnobs) {
        Ok(Reply::Knobs(k)) => k,
        Ok(_) => return 1,
        Err(e) => {
            let _ = writeln!(err, "sysctl: {e}");
            return 1;
        }
    };
    if o.a {
        for n in NODES {
            show(out, &o, n.name, (n.get)(&knobs));
        }
        return 0;
    }
    // Every error ends the run at once (sysctl.c's EXIT), as one
    // argument at a time is parsed and run.
    for arg in &rest {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        let found: Vec<&Node> = NODES
            .iter()
            .filter(|n| n.name == name || n.name.starts_with(&format!("{name}.")))
            .collect();
        if found.is_empty() {
            if !o.q {
                let _ = writeln!(err, "sysctl: {}", invalid(name));
            }
            return 1;
        }
        let Some(v) = value else {
            for n in found {
                show(out, &o, n.name, (n.get)(&knobs));
            }
            continue;
        };
        if !o.w {
            let _ = writeln!(err, "sysctl: Must specify -w to set variables");
            return 1;
        }
        let [n] = found[..] else {
            // A node takes no value: sysctl prints it.
            for n in found {
                show(out, &o, n.name, (n.get)(&knobs));
            }
            continue;
        };
        let Ok(num) = v.parse::<i64>() else {
            let _ = writeln!(err, "sysctl: {v}: not a number");
            return 1;
        };
        let old = (n.get)(&knobs);
        let mut next = knobs;
        let r = match n.set {
            None => Err(Errno::EPERM),
            Some(set) => set(&mut next, num),
        };
        let r = r.and_then(|_| ctl.ioctl(Request::SetKnobs(next)).map(|_| ()));
        if let Err(e) = r {
            let _ = writeln!(err, "sysctl: {name}: {e}");
            return 1;
        }
        knobs = next;
        if !o.q {
            let new = (n.get)(&knobs);
            let _ = if o.n {
                writeln!(out, "{new}")
            } else {
                writeln!(out, "{name}: {old} -> {new}")
            };
        }
    }
    0
}

fn show(out: &mut dyn Write, o: &Opts, name: &str, v: i64) {
    if o.q {
        return;
    }
    let _ = if o.n {
        writeln!(out, "{v}")
    } else {
        writeln!(out, "{name} = {v}")
    };
}

/// sysctl.c's parse error: the first level the tree does not have.
fn invalid(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let mut depth = 0;
    while depth < parts.len() {
        let prefix = parts[..=depth].join(".");
        let known = NODES
            .iter()
            .any(|n| n.name == prefix || n.name.starts_with(&format!("{prefix}.")));
        if !known {
            break;
        }
        depth += 1;
    }
    let level = LEVELS.get(depth).copied().unwrap_or("deep");
    let bad = parts.get(depth).copied().unwrap_or("");
    format!("{level} level name '{bad}' in '{name}' is invalid")
}

#[cfg(test)]
mod tests {
    #[test]
    fn invalid_names() {
        assert_eq!(
            super::invalid("net.inet.x"),
            "third level name 'x' in 'net.inet.x' is invalid"
        );
        assert_eq!(
            super::invalid("kern"),
            "top level name 'kern' in 'kern' is invalid"
        );
        assert_eq!(
            super::invalid("net.inet6.ip6.nope"),
            "fourth level name 'nope' in 'net.inet6.ip6.nope' is invalid"
        );
    }
}
