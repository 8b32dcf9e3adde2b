//! brconfig's status output, byte for byte as NetBSD prints it.

use crate::ioctl::{BridgeRoute, BridgeStatus, BridgeStp, Mac, ifbif};
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

/// A bridge id as `8000.b2:a0:10:00:00:01`: priority in hex, then the MAC.
pub fn bridge_id(id: u64) -> String {
    let b = id.to_be_bytes();
    format!(
        "{:04x}.{}",
        u16::from_be_bytes([b[0], b[1]]),
        ether_ntoa(&[b[2], b[3], b[4], b[5], b[6], b[7]])
    )
}

/// `-v`, an addition of ours: the spanning tree as this bridge sees it.
pub fn spanning_tree(t: &BridgeStp) -> String {
    let mut s = String::from("\tSpanning tree:");
    if t.bridge_id == 0 {
        s.push_str(" not running\n");
        return s;
    }
    s.push('\n');
    let _ = writeln!(s, "\t\tbridge id {}", bridge_id(t.bridge_id));
    let _ = writeln!(
        s,
        "\t\troot id {} root path cost {} root port {}",
        bridge_id(t.root_id),
        t.root_path_cost,
        t.root_port.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        s,
        "\t\ttopology change {} config in {} out {} tcn in {} out {} bad {}",
        if t.topology_change { "yes" } else { "no" },
        t.config_in,
        t.config_out,
        t.tcn_in,
        t.tcn_out,
        t.bad_in
    );
    s
}

/// `spanning_tree` of `--libxo json` with `-v`: the `-v` lines' facts,
/// `null` while the tree is not running.
pub fn spanning_tree_json(t: &BridgeStp) -> serde_json::Value {
    if t.bridge_id == 0 {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "bridge_id": bridge_id(t.bridge_id),
        "root_id": bridge_id(t.root_id),
        "root_path_cost": t.root_path_cost,
        "root_port": t.root_port,
        "topology_change": t.topology_change,
        "config_in": t.config_in,
        "config_out": t.config_out,
        "tcn_in": t.tcn_in,
        "tcn_out": t.tcn_out,
        "bad": t.bad_in,
    })
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
    fn spanning_tree_lines() {
        let mut t = BridgeStp::default();
        assert_eq!(spanning_tree(&t), "\tSpanning tree: not running\n");
        t.bridge_id = 0x8000_b2a0_1000_0001;
        t.root_id = 0x1000_b2a0_2000_0001;
        t.root_path_cost = 55;
        t.root_port = Some("shmif0".into());
        t.config_in = 3;
        assert_eq!(
            spanning_tree(&t),
            "\tSpanning tree:\n\t\tbridge id 8000.b2:a0:10:00:00:01\n\
             \t\troot id 1000.b2:a0:20:00:00:01 root path cost 55 root port shmif0\n\
             \t\ttopology change no config in 3 out 0 tcn in 0 out 0 bad 0\n"
        );
    }

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
