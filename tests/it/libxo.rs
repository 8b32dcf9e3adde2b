//! `--libxo json`: the JSON twin of the text output, read back with jq(1)
//! and compared with the text line for line; `-a` with many interfaces is
//! one valid document.

use crate::common::{BRCONFIG, Daemon, IFCONFIG, in_ci};
use std::io::Write;
use std::process::{Command, Stdio};

fn have_jq() -> bool {
    let ok = Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !in_ci(),
        "jq is missing (scripts/deps.sh installs it)"
    );
    if !ok {
        eprintln!("skipped: jq is missing (scripts/deps.sh installs it)");
    }
    ok
}

/// `jq -r FILTER` over `input`; jq must accept the document.
fn jq(filter: &str, input: &str) -> String {
    let mut c = Command::new("jq")
        .args(["-r", filter])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jq {filter}: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tool(d: &Daemon, bin: &str, args: &[&str]) -> String {
    let (o, e, rc) = crate::common::run(d.cmd(bin).args(args));
    assert_eq!((rc, e.as_str()), (0, ""), "{bin} {args:?}");
    o
}

/// A scene with what the status shows: addresses of both families, a
/// description, a linkstr, media, a bridge with members and a static
/// entry.
fn scene(d: &Daemon) {
    let bus = d.dir.path().join("bus");
    let bus = bus.to_str().unwrap();
    for args in [
        &["lo1", "create"][..],
        &["lo1", "inet", "10.7.0.1/8"],
        &["lo1", "inet6", "fc00::7", "prefixlen", "64", "alias"],
        &[
            "lo1",
            "inet6",
            "fc00::8",
            "prefixlen",
            "64",
            "pltime",
            "3000",
            "vltime",
            "4000",
        ],
        &["lo1", "description", "a loop back", "up"],
        &["shmif0", "create"],
        &["shmif0", "linkstr", bus],
        &["shmif0", "inet", "192.168.7.1/24", "up"],
        &[
            "shmif0",
            "inet",
            "192.168.8.1",
            "netmask",
            "255.0.255.0",
            "alias",
        ],
        &["shmif0", "link", "02:00:00:00:00:07"],
        &["bridge0", "create"],
    ] {
        d.ok(args);
    }
    tool(
        d,
        BRCONFIG,
        &[
            "bridge0",
            "add",
            "shmif0",
            "static",
            "shmif0",
            "02:00:00:00:00:09",
            "up",
        ],
    );
    // Until DAD is done, two runs may see different address flags.
    tool(d, IFCONFIG, &["-w", "10"]);
}

/// The text rebuilt from the JSON: the lines the status block has for
/// these interfaces (first line, description, address, linkstr, link
/// state, media, supported media, counters, inet, inet6 with lifetimes,
/// link). `$v`, `$m`, `$L` say whether -v, -m, -L were given.
const IFCONFIG_TEXT: &str = r#"
def pl($n; $u): "\($n) \($u)" + (if $n == 1 then "" else "s" end);
def opt($n; $u): if $n != 0 then ", " + pl($n; $u) else "" end;
def life: if . == null then "infty" else tostring end;
def hex: . as $v | [range(0;8)] | map(($v / pow(16;7-.) | floor) % 16) | map("0123456789abcdef"[.:.+1]) | join("") | sub("^0+(?=.)";"");
def fw: "0x\(.value|hex)" + (if (.names|length) > 0 then "<\(.names|join(","))>" else "" end);
.interfaces[] |
"\(.name): flags=\(.flags|fw)" + (if .metric != 0 then " metric \(.metric)" else "" end) + (if .mtu != 0 then " mtu \(.mtu)" else "" end),
(if .description then "\tdescription: \"\(.description)\"" else empty end),
(if .address then "\taddress: \(.address)" else empty end),
(if .linkstr then "\tlinkstr: \(.linkstr)" else empty end),
(if $v then "\tlinkstate: \(.link_state)" else empty end),
(if .media then "\tmedia: \(.media.current)", (if .media.status then "\tstatus: \(.media.status)" else empty end),
  (if $m and (.media.supported|length) > 0 then (.media.current|split(" ")[0]) as $ty | "\tsupported \($ty) media:", (.media.supported[] | ltrimstr($ty) | ltrimstr(" ") | split(" ") | "\t\tmedia \(.[0])" + (if length > 1 then " mediaopt \(.[1:]|join(" "))" else "" end)) else empty end)
  else empty end),
(if .input then
  "\tinput: \(pl(.input.packets; "packet")), \(pl(.input.bytes; "byte"))\(opt(.input.multicasts; "multicast"))\(opt(.input.errors; "error"))\(opt(.input.queue_drops; "queue drop"))" + (if .input.unknown_protocol != 0 then ", \(.input.unknown_protocol) unknown protocol" else "" end),
  "\toutput: \(pl(.output.packets; "packet")), \(pl(.output.bytes; "byte"))\(opt(.output.multicasts; "multicast"))\(opt(.output.errors; "error"))\(opt(.output.collisions; "collision"))"
 else empty end),
(. as $i | (.inet // [])[] | "\tinet \(.address)" + (if .prefixlen != null then "/\(.prefixlen)" else " netmask 0x\(.netmask|split(".")|map(tonumber)|(.[0]*16777216+.[1]*65536+.[2]*256+.[3])|hex)" end) + (if .broadcast then " broadcast \(.broadcast)" else "" end) + " flags \(.flags|fw)"),
(. as $i | (.inet6 // [])[] | "\tinet6 \(.address)" + (if .zone then "%\(.zone)" else "" end) + "/\(.prefixlen) flags \(.flags|fw)" + (if .scopeid != 0 then " scopeid 0x\(.scopeid|hex)" else "" end) + (if $L and (.pltime != null or .vltime != null) then " pltime \(.pltime|life) vltime \(.vltime|life)" else "" end)),
((.link // [])[] | "\tlink \(.)")
"#;

#[test]
fn ifconfig_json_twin_of_text() {
    if !have_jq() {
        return;
    }
    let d = Daemon::start();
    scene(&d);
    // lo1 sees no traffic: its counters hold still between two runs.
    for args in [
        &["-a"][..],
        &["lo1"],
        &["shmif0"],
        &["-a", "inet6"],
        &["-a", "inet"],
        &["-v", "lo1"],
        &["-m", "shmif0"],
        &["-L", "lo1"],
        &["-L", "-m", "-a", "inet6"],
    ] {
        let has = |o: &str| args.contains(&o);
        let filter = format!(
            "{} as $v | {} as $m | {} as $L | {IFCONFIG_TEXT}",
            has("-v"),
            has("-m"),
            has("-L")
        );
        let mut jargs = vec!["--libxo", "json"];
        jargs.extend_from_slice(args);
        // Lifetimes count down: a second may turn between the two runs,
        // but not twice in a row.
        for attempt in 1.. {
            let text = tool(&d, IFCONFIG, args);
            let json = tool(&d, IFCONFIG, &jargs);
            let rebuilt = jq(&filter, &json);
            if rebuilt == text || attempt == 3 {
                assert_eq!(rebuilt, text, "ifconfig {args:?}: JSON {json}");
                break;
            }
        }
    }
    // Typed: numbers are numbers, flags carry the number and the names.
    let json = tool(&d, IFCONFIG, &["--libxo=json", "lo1"]);
    assert_eq!(
        jq(
            r#".interfaces[0] | [(.mtu|type), (.index|type), (.flags.value|type), (.flags.names|index("UP") != null)] + (.inet6[] | select(.address == "fc00::7") | [.prefixlen, .pltime]) | @tsv"#,
            &json
        ),
        "number\tnumber\tnumber\ttrue\t64\t\n"
    );
    // -v adds the counters and link state, both as numbers and words.
    let json = tool(&d, IFCONFIG, &["--libxo", "json,pretty", "-v", "shmif0"]);
    assert!(json.contains("\n  "), "pretty: {json}");
    assert_eq!(
        jq(
            r#".interfaces[0] | [(.input.packets|type), (.output.bytes|type), .link_state] | @tsv"#,
            &json
        ),
        "number\tnumber\tup\n"
    );
    // -l and -C.
    let json = tool(&d, IFCONFIG, &["-l", "--libxo", "json"]);
    assert_eq!(
        jq(r#".names | join(" ")"#, &json),
        tool(&d, IFCONFIG, &["-l"])
    );
    let json = tool(&d, IFCONFIG, &["-C", "--libxo", "json"]);
    assert_eq!(
        jq(r#".cloners | join(" ")"#, &json),
        tool(&d, IFCONFIG, &["-C"])
    );
    // An encoding we do not have is refused, with the tool's name.
    let (o, e, rc) = crate::common::run(d.cmd(IFCONFIG).args(["--libxo", "xml", "-a"]));
    assert_eq!((o.as_str(), rc), ("", 1));
    assert!(e.starts_with("ifconfig: --libxo: xml"), "{e}");
}

/// brconfig's status rebuilt from its JSON.
const BRCONFIG_TEXT: &str = r#"
def hex: . as $v | [range(0;8)] | map(($v / pow(16;7-.) | floor) % 16) | map("0123456789abcdef"[.:.+1]) | join("") | sub("^0+(?=.)";"");
def pb: "flags=\(.value|hex)<\(.names|join(","))>";
.bridges[] |
"\(.name): \(.flags|pb)",
"\tConfiguration:",
"\t\tpriority \(.priority) hellotime \(.hellotime) fwddelay \(.fwddelay) maxage \(.maxage)",
"\t\tipfilter \(if .ipfilter then "enabled" else "disabled" end) flags 0x\(.ipfilter_flags|hex)",
"\tInterfaces:",
(.interfaces[] | "\t\t\(.name) \(.flags|pb)", "\t\t\tport \(.port) priority \(.priority)" + (if (.flags.names|index("STP")) != null then " path cost \(.path_cost) \(.state)" else "" end)),
"\tAddress cache (max cache: \(.max_cache), timeout: \(.timeout)):",
(.addresses[] | "\t\t\(.address) \(.interface) \(.expire) \(.flags|pb)")
"#;

#[test]
fn brconfig_json_twin_of_text() {
    if !have_jq() {
        return;
    }
    let d = Daemon::start();
    scene(&d);
    d.ok(&["bridge1", "create"]);
    tool(
        &d,
        BRCONFIG,
        &[
            "bridge1", "maxaddr", "50", "timeout", "60", "priority", "100",
        ],
    );
    for args in [&["-a"][..], &["bridge0"], &["bridge1"]] {
        let text = tool(&d, BRCONFIG, args);
        let mut jargs = vec!["--libxo=json"];
        jargs.extend_from_slice(args);
        let json = tool(&d, BRCONFIG, &jargs);
        assert_eq!(jq(BRCONFIG_TEXT, &json), text, "brconfig {args:?}: {json}");
    }
    let json = tool(&d, BRCONFIG, &["--libxo", "json", "bridge0", "addr"]);
    assert_eq!(
        jq(
            r#".addresses[] | "\t\(.address) \(.interface) \(.expire) flags=\(.flags.value)<\(.flags.names|join(","))>""#,
            &json
        ),
        tool(&d, BRCONFIG, &["bridge0", "addr"])
    );
}

#[test]
fn two_hundred_interfaces_one_document() {
    if !have_jq() {
        return;
    }
    let d = Daemon::start();
    for i in 1..=200 {
        d.ok(&[&format!("lo{i}"), "create"]);
    }
    let json = tool(&d, IFCONFIG, &["-a", "--libxo", "json"]);
    assert_eq!(jq(".interfaces | length", &json), "201\n");
    assert_eq!(jq(".interfaces[200].name", &json), "lo200\n");
    let json = tool(&d, BRCONFIG, &["--libxo", "json", "-a"]);
    assert_eq!(jq(".bridges | length", &json), "0\n");
}
