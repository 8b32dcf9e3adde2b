//! brconfig's status output, byte for byte as NetBSD prints it.

use crate::ioctl::{BridgeRoute, BridgeStatus, Mac, ifbif};
use std::fmt::Write;

/// Interface flag names as brconfig's own `IFFBITS` spells them.
const IFFBITS: [&str; 16] = [
    "UP",
    "BROADCAST",
    "DEBUG",
    "LOOPBACK",
    "POINTOPOINT",
    "NOTRAILERS",
    "RUNNING",
    "NOARP",
    "PROMISC",
    "ALLMULTI",
    "OACTIVE",
    "SIMPLEX",
    "LINK0",
    "LINK1",
    "LINK2",
    "MULTICAST",
];
/// `IFBIFBITS`
const IFBIFBITS: [&str; 4] = ["LEARNING", "DISCOVER", "STP", "PROTECTED"];
/// `IFBAFBITS`
const IFBAFBITS: [&str; 1] = ["STATIC"];

/// `printb`: `name=<hex><NAME,NAME>`, with `<>` even when no bit is named.
pub fn printb(name: &str, v: u32, bits: &[&str]) -> String {
    let names: Vec<&str> = bits
        .iter()
        .enumerate()
        .filter(|(i, _)| v & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    format!("{name}={v:x}<{}>", names.join(","))
}

/// `ether_ntoa(3)`: two lowercase hex digits per byte.
pub fn ether_ntoa(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The address cache lines (`show_addresses`), each after `prefix`.
pub fn addresses(routes: &[BridgeRoute], prefix: &str) -> String {
    let mut s = String::new();
    for r in routes {
        let _ = writeln!(
            s,
            "{prefix}{} {} {} {}",
            ether_ntoa(&r.mac),
            r.member,
            r.expire,
            printb("flags", r.flags, &IFBAFBITS)
        );
    }
    s
}

/// The whole status of one bridge (`status`).
pub fn status(name: &str, flags: u32, b: &BridgeStatus) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{name}: {}", printb("flags", flags & 0xffff, &IFFBITS));
    s.push_str("\tConfiguration:\n");
    let _ = writeln!(
        s,
        "\t\tpriority {} hellotime {} fwddelay {} maxage {}",
        b.priority, b.hello_time, b.fwd_delay, b.max_age
    );
    let _ = writeln!(
        s,
        "\t\tipfilter {} flags 0x{:x}",
        if b.filter { "enabled" } else { "disabled" },
        b.filter_flags
    );
    s.push_str("\tInterfaces:\n");
    for m in &b.members {
        let _ = writeln!(s, "\t\t{} {}", m.name, printb("flags", m.flags, &IFBIFBITS));
        let _ = write!(s, "\t\t\tport {} priority {}", m.port, m.priority);
        if m.flags & ifbif::STP != 0 {
            let _ = write!(s, " path cost {} {}", m.path_cost, m.state);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\tAddress cache (max cache: {}, timeout: {}):",
        b.max_cache, b.timeout
    );
    s.push_str(&addresses(&b.routes, "\t\t"));
    s
}

/// A flags word of `bits` (bit i named `bits[i]`) as JSON.
fn flags_json(v: u32, bits: &[&'static str]) -> serde_json::Value {
    crate::libxo::flags(v, bits.iter().enumerate().map(|(i, n)| (1u32 << i, *n)))
}

/// The address cache entries as JSON (see brconfig(8), OUTPUT FORMATS).
pub fn addresses_json(routes: &[BridgeRoute]) -> serde_json::Value {
    routes
        .iter()
        .map(|r| {
            serde_json::json!({
                "address": ether_ntoa(&r.mac),
                "interface": r.member,
                "expire": r.expire,
                "flags": flags_json(r.flags, &IFBAFBITS),
            })
        })
        .collect()
}

/// [`status`] as one JSON object: every field the text shows, typed.
pub fn status_json(name: &str, flags: u32, b: &BridgeStatus) -> serde_json::Value {
    let members: Vec<serde_json::Value> = b
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "flags": flags_json(m.flags, &IFBIFBITS),
                "port": m.port,
                "priority": m.priority,
                "path_cost": m.path_cost,
                "state": m.state,
            })
        })
        .collect();
    serde_json::json!({
        "name": name,
        "flags": flags_json(flags & 0xffff, &IFFBITS),
        "priority": b.priority,
        "hellotime": b.hello_time,
        "fwddelay": b.fwd_delay,
        "maxage": b.max_age,
        "ipfilter": b.filter,
        "ipfilter_flags": b.filter_flags,
        "interfaces": members,
        "max_cache": b.max_cache,
        "timeout": b.timeout,
        "addresses": addresses_json(&b.routes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printb_forms() {
        assert_eq!(printb("flags", 0x41, &IFFBITS), "flags=41<UP,RUNNING>");
        assert_eq!(printb("flags", 0, &IFBAFBITS), "flags=0<>");
        assert_eq!(
            printb("flags", 0xb, &IFBIFBITS),
            "flags=b<LEARNING,DISCOVER,PROTECTED>"
        );
        assert_eq!(printb("flags", 0x21, &IFFBITS), "flags=21<UP,NOTRAILERS>");
    }
}
