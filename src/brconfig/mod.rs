//! brconfig(8): configure bridge(4) interfaces. The binary only connects
//! to the kernel and calls [`main_with`].
//!
//! - [`parse`]: the command table and argument syntax.
//! - [`status`]: the status and address cache output.

pub mod parse;
pub mod status;

use crate::ioctl::{BridgeReq, BridgeStatus, Errno, Ioctl, Reply, Request, iff};
use parse::{Action, Command};
use std::io::Write;

const PROG: &str = "brconfig";

const USAGE: &[&str] = &[
    "-a",
    "<bridge>",
    "<bridge> up|down",
    "<bridge> addr",
    "<bridge> add <interface>",
    "<bridge> delete <interface>",
    "<bridge> maxaddr <size>",
    "<bridge> timeout <time>",
    "<bridge> static <interface> <address>",
    "<bridge> deladdr <address>",
    "<bridge> flush",
    "<bridge> flushall",
    "<bridge> ipf|-ipf",
    "<bridge> discover|-discover <interface>",
    "<bridge> learn|-learn <interface>",
    "<bridge> stp|-stp <interface>",
    "<bridge> maxage <time>",
    "<bridge> fwddelay <time>",
    "<bridge> hellotime <time>",
    "<bridge> priority <value>",
    "<bridge> ifpriority <interface> <value>",
    "<bridge> ifpathcost <interface> <value>",
    "<bridge> protect|-protect <interface>",
];

/// Why brconfig stops with exit status 1.
#[derive(Debug, PartialEq, Eq)]
enum Fail {
    /// Print the usage.
    Usage,
    /// A complaint of getopt(3), then the usage.
    BadOption(char),
    /// `errx`: the message alone.
    Msg(String),
    /// `err`: the message and the error.
    Sys(String, Errno),
}

type Result<T> = std::result::Result<T, Fail>;

fn sys(msg: impl Into<String>) -> impl FnOnce(Errno) -> Fail {
    let msg = msg.into();
    move |e| Fail::Sys(msg, e)
}

/// Run brconfig with the arguments after the program name against `ctl`;
/// returns the exit status.
pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let (xo, args) = match crate::libxo::take_args(args) {
        Ok(a) => a,
        Err(m) => {
            let _ = writeln!(err, "{PROG}: {m}");
            return 1;
        }
    };
    let mut buf = Out {
        xo,
        ..Out::default()
    };
    let r = run(&args, ctl, &mut buf);
    let _ = out.write_all(&buf.text);
    if xo.is_json() && (buf.bridges.is_some() || buf.addresses.is_some()) {
        let mut doc = serde_json::Map::new();
        if let Some(b) = buf.bridges {
            doc.insert("bridges".into(), b.into());
        }
        if let Some(a) = buf.addresses {
            doc.insert("addresses".into(), a.into());
        }
        xo.emit(out, &doc.into());
    }
    let _ = out.flush();
    match r {
        Ok(()) => 0,
        Err(f) => {
            let _ = match f {
                Fail::Usage => write_usage(err),
                Fail::BadOption(c) => {
                    writeln!(err, "{PROG}: unknown option -- {c}").and_then(|_| write_usage(err))
                }
                Fail::Msg(m) => writeln!(err, "{PROG}: {m}"),
                Fail::Sys(m, e) => writeln!(err, "{PROG}: {m}: {e}"),
            };
            1
        }
    }
}

/// What a run prints: text, or the parts of one JSON document.
#[derive(Default)]
struct Out {
    xo: crate::libxo::Output,
    text: Vec<u8>,
    bridges: Option<Vec<serde_json::Value>>,
    addresses: Option<Vec<serde_json::Value>>,
}

fn write_usage(err: &mut dyn Write) -> std::io::Result<()> {
    for (i, u) in USAGE.iter().enumerate() {
        writeln!(
            err,
            "{} {PROG} {u}",
            if i == 0 { "usage:" } else { "      " }
        )?;
    }
    Ok(())
}

fn run(args: &[String], ctl: &mut dyn Ioctl, out: &mut Out) -> Result<()> {
    if args.is_empty() {
        return Err(Fail::Usage);
    }
    // getopt(argc, argv, "av"): options end at the first non-option or
    // "--". `-v` (ours) adds the spanning tree to the status.
    let mut aflag = false;
    let mut verbose = false;
    let mut rest = args;
    while let Some(a) = rest.first() {
        if a == "--" {
            rest = &rest[1..];
            break;
        }
        let Some(opts) = a.strip_prefix('-').filter(|o| !o.is_empty()) else {
            break;
        };
        for c in opts.chars() {
            match c {
                'a' => aflag = true,
                'v' => verbose = true,
                _ => return Err(Fail::BadOption(c)),
            }
        }
        rest = &rest[1..];
    }
    if aflag {
        if !rest.is_empty() {
            return Err(Fail::Usage);
        }
        return printall(ctl, out, verbose);
    }
    let Some((bridge, mut words)) = rest.split_first() else {
        return Err(Fail::Usage);
    };
    if !parse::is_bridge(bridge) {
        return Err(Fail::Msg(format!("{bridge} is not a bridge")));
    }
    let mut flags = match ctl.ioctl(Request::GetIfFlags {
        name: bridge.clone(),
    }) {
        Ok(Reply::Flags(f)) => f,
        Ok(_) => {
            return Err(Fail::Sys(
                "unable to get interface flags".into(),
                Errno::EIO,
            ));
        }
        Err(e) => return Err(Fail::Sys("unable to get interface flags".into(), e)),
    };
    if words.is_empty() {
        return show(ctl, bridge, out, verbose);
    }
    let mut flags_updated = false;
    while let Some((word, after)) = words.split_first() {
        let cmd =
            parse::lookup(word).ok_or_else(|| Fail::Msg(format!("unknown command: {word}")))?;
        if after.len() < cmd.argc {
            return Err(Fail::Msg(format!(
                "command {} requires {} argument{}",
                cmd.keyword,
                cmd.argc,
                if cmd.argc == 1 { "" } else { "s" }
            )));
        }
        let (argv, mut next) = after.split_at(cmd.argc);
        if let Action::Up(up) = cmd.action {
            flags = if up {
                flags | iff::UP
            } else {
                flags & !iff::UP
            };
            flags_updated = true;
        } else {
            exec(ctl, bridge, cmd, argv, out)?;
        }
        // Extension: `add`/`delete` take a list of members, up to the next
        // word that is a command.
        if matches!(cmd.action, Action::Add | Action::Delete) {
            while let Some((member, rest)) = next.split_first() {
                if parse::lookup(member).is_some() {
                    break;
                }
                exec(ctl, bridge, cmd, std::slice::from_ref(member), out)?;
                next = rest;
            }
        }
        words = next;
    }
    if flags_updated {
        ctl.ioctl(Request::SetIfFlags {
            name: bridge.clone(),
            flags,
        })
        .map_err(sys("unable to set interface flags"))?;
    }
    Ok(())
}

/// A number argument within `mask` (`get_val` and the range check).
fn value(cmd: &Command, arg: &str, mask: u64) -> Result<u32> {
    match parse::get_val(arg) {
        Some(v) if v & !mask == 0 => Ok(v as u32),
        _ => Err(Fail::Msg(format!("{}: invalid value: {arg}", cmd.keyword))),
    }
}

fn mac(cmd: &Command, arg: &str) -> Result<crate::ioctl::Mac> {
    parse::ether_aton(arg)
        .ok_or_else(|| Fail::Msg(format!("{}: invalid address: {arg}", cmd.keyword)))
}

fn drvspec(ctl: &mut dyn Ioctl, bridge: &str, req: BridgeReq) -> std::result::Result<Reply, Errno> {
    ctl.ioctl(Request::SetDrvSpec {
        name: bridge.to_string(),
        req: req.into(),
    })
}

fn get(ctl: &mut dyn Ioctl, bridge: &str) -> std::result::Result<BridgeStatus, Errno> {
    match ctl.ioctl(Request::GetDrvSpec {
        name: bridge.to_string(),
        req: BridgeReq::Get.into(),
    })? {
        Reply::Bridge(b) => Ok(b),
        _ => Err(Errno::EIO),
    }
}

fn exec(
    ctl: &mut dyn Ioctl,
    bridge: &str,
    cmd: &Command,
    argv: &[String],
    out: &mut Out,
) -> Result<()> {
    let kw = cmd.keyword;
    let arg0 = argv.first().map(String::as_str).unwrap_or_default();
    // The usual `err(1, "%s %s", keyword, argv[0])`.
    let ctx = || format!("{kw} {arg0}");
    let set = |ctl: &mut dyn Ioctl, req: BridgeReq, ctx: String| {
        drvspec(ctl, bridge, req).map(|_| ()).map_err(sys(ctx))
    };
    let member = arg0.to_string();
    match cmd.action {
        Action::Up(_) => Ok(()),
        Action::Add => set(ctl, BridgeReq::Add { member }, ctx()),
        Action::Delete => set(ctl, BridgeReq::Del { member }, ctx()),
        Action::MemberFlag(bit, on) => {
            let (set_bits, clear) = if on { (bit, 0) } else { (0, bit) };
            match drvspec(
                ctl,
                bridge,
                BridgeReq::SetIfFlags {
                    member,
                    set: set_bits,
                    clear,
                },
            ) {
                Ok(_) => Ok(()),
                // The member lookup is what BRDGGIFFLGS does first.
                Err(e) if e == Errno::ENOENT => {
                    Err(Fail::Sys("unable to get bridge flags".into(), e))
                }
                Err(e) => Err(Fail::Sys("unable to set bridge flags".into(), e)),
            }
        }
        Action::Flush(all) => set(ctl, BridgeReq::Flush { all }, kw.to_string()),
        Action::Static => {
            let m = mac(cmd, &argv[1])?;
            set(
                ctl,
                BridgeReq::AddStatic { member, mac: m },
                format!("{kw} {arg0} {}", argv[1]),
            )
        }
        Action::DelAddr => {
            let m = mac(cmd, arg0)?;
            set(ctl, BridgeReq::DelAddr { mac: m }, ctx())
        }
        Action::Addr => {
            let b = get(ctl, bridge).map_err(sys("unable to get address cache"))?;
            if out.xo.is_json() {
                let list = out.addresses.get_or_insert_default();
                if let serde_json::Value::Array(a) = status::addresses_json(&b.routes) {
                    list.extend(a);
                }
            } else {
                out.text
                    .extend_from_slice(status::addresses(&b.routes, "\t").as_bytes());
            }
            Ok(())
        }
        Action::MaxAddr => {
            let v = value(cmd, arg0, 0xffff_ffff)?;
            set(ctl, BridgeReq::SetCacheSize(v), ctx())
        }
        Action::Timeout => {
            let v = value(cmd, arg0, 0xffff_ffff)?;
            set(ctl, BridgeReq::SetTimeout(v), ctx())
        }
        Action::HelloTime => {
            let v = value(cmd, arg0, 0xff)?;
            set(ctl, BridgeReq::SetHelloTime(v), ctx())
        }
        Action::FwdDelay => {
            let v = value(cmd, arg0, 0xff)?;
            set(ctl, BridgeReq::SetFwdDelay(v), ctx())
        }
        Action::MaxAge => {
            let v = value(cmd, arg0, 0xff)?;
            set(ctl, BridgeReq::SetMaxAge(v), ctx())
        }
        Action::Priority => {
            let v = value(cmd, arg0, 0xffff)?;
            set(ctl, BridgeReq::SetPriority(v), ctx())
        }
        Action::IfPriority => {
            let v = value(cmd, &argv[1], 0xff)?;
            set(
                ctl,
                BridgeReq::SetIfPriority {
                    member,
                    priority: v,
                },
                ctx(),
            )
        }
        Action::IfPathCost => {
            let v = value(cmd, &argv[1], 0xff)?;
            set(ctl, BridgeReq::SetIfCost { member, cost: v }, ctx())
        }
        Action::Ipf(on) => {
            get(ctl, bridge).map_err(sys(kw))?;
            set(
                ctl,
                BridgeReq::SetFilter(on),
                format!("{kw} {:x}", u32::from(on)),
            )
        }
    }
}

/// The status of one bridge (`status`).
fn show(ctl: &mut dyn Ioctl, bridge: &str, out: &mut Out, verbose: bool) -> Result<()> {
    let flags = match ctl.ioctl(Request::GetIfFlags {
        name: bridge.to_string(),
    }) {
        Ok(Reply::Flags(f)) => f,
        Ok(_) => return Err(Fail::Sys("unable to get flags".into(), Errno::EIO)),
        Err(e) => return Err(Fail::Sys("unable to get flags".into(), e)),
    };
    let b = get(ctl, bridge).map_err(sys("unable to get bridge priority"))?;
    if out.xo.is_json() {
        let mut j = status::status_json(bridge, flags, &b);
        if verbose && let Some(o) = j.as_object_mut() {
            o.insert("spanning_tree".into(), status::spanning_tree_json(&b.stp));
        }
        out.bridges.get_or_insert_default().push(j);
    } else {
        out.text
            .extend_from_slice(status::status(bridge, flags, &b).as_bytes());
        if verbose {
            out.text
                .extend_from_slice(status::spanning_tree(&b.stp).as_bytes());
        }
    }
    Ok(())
}

/// `-a`: every `bridge<digit>…` interface, in interface order.
fn printall(ctl: &mut dyn Ioctl, out: &mut Out, verbose: bool) -> Result<()> {
    let list = match ctl.ioctl(Request::GetIfConf { name: None }) {
        Ok(Reply::IfConf(l)) => l,
        Ok(_) => return Err(Fail::Sys("getifaddrs".into(), Errno::EIO)),
        Err(e) => return Err(Fail::Sys("getifaddrs".into(), e)),
    };
    if out.xo.is_json() {
        // An empty list is still a document.
        out.bridges.get_or_insert_default();
    }
    for i in list.iter().filter(|i| parse::is_bridge(&i.name)) {
        show(ctl, &i.name, out, verbose)?;
    }
    Ok(())
}
