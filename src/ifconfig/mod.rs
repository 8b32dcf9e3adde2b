//! ifconfig(8): NetBSD's interface configuration tool, as a library.
//!
//! [`parse`] turns the command line into an [`parse::Invocation`];
//! [`main_with`] runs it against anything that answers [`Ioctl`] requests
//! and prints NetBSD's output, messages and exit codes. The binary only
//! connects to the daemon and calls [`main_with`].

mod exec;
mod media;
pub mod parse;
pub mod status;
mod vxlan;

use crate::ioctl::{
    Errno, IfStatus, Ioctl, LinkState, Reply, Request, Response, iff, in_iff, in6_iff,
};
use crate::libxo::Output;
use parse::{Command, Family, IfName, Invocation, Opts, ParseError};
use status::Show;
use std::io::Write;
use std::time::{Duration, Instant};

/// NetBSD's usage text, for the keywords this ifconfig knows.
pub const USAGE: &str = "\
usage: ifconfig [-h] [-m] [-v] [-z] [-L] interface
\t[ af [ address [ dest_addr ] ] [ netmask mask ] [ prefixlen n ]
\t\t[ alias | -alias ] ]
\t[ up ] [ down ] [ metric n ] [ mtu n ]
\t[ anycast | -anycast ] [ deprecated | -deprecated ]
\t[ tentative | -tentative ] [ pltime n ] [ vltime n ] [ eui64 ]
\t[ media type ] [ mediaopt opts ] [ -mediaopt opts ] [ instance minst ]
\t[ arp | -arp ]
\t[ link0 | -link0 ] [ link1 | -link1 ] [ link2 | -link2 ]
\t[ linkstr str | -linkstr ]
\t[ unnumbered | -unnumbered ]
\t[ description str | descr str | -description | -descr ]
       ifconfig -a [-b] [-d] [-h] [-m] [-u] [-v] [-z] [ af ]
       ifconfig -l [-b] [-d] [-s] [-u]
       ifconfig -C
       ifconfig -w n
       ifconfig interface create
       ifconfig interface destroy
";

/// How often -w looks at the addresses again (ifconfig.c WAIT_DAD).
const WAIT_DAD: Duration = Duration::from_millis(10);

/// The process is done with this exit code; messages are already out.
pub(crate) struct Exit(pub i32);

/// What every part of a run uses: the kernel and the two streams.
pub(crate) struct Ctx<'a> {
    pub ctl: &'a mut dyn Ioctl,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// `--libxo`: text or JSON.
    pub xo: Output,
}

impl Ctx<'_> {
    pub fn ioctl(&mut self, req: Request) -> Response {
        self.ctl.ioctl(req)
    }

    /// warnx(3)
    pub fn warnx(&mut self, msg: &str) {
        let _ = writeln!(self.err, "ifconfig: {msg}");
    }

    /// warn(3): the message and the error.
    pub fn warn(&mut self, msg: &str, e: Errno) {
        let _ = writeln!(self.err, "ifconfig: {msg}: {e}");
    }

    /// errx(3): give up with status 1.
    pub fn errx(&mut self, msg: &str) -> Exit {
        self.warnx(msg);
        Exit(1)
    }

    /// err(3)
    pub fn err(&mut self, msg: &str, e: Errno) -> Exit {
        self.warn(msg, e);
        Exit(1)
    }

    pub fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }

    /// Every interface, or the one named (getifaddrs + SIOCG*).
    pub fn ifconf(&mut self, name: Option<&str>) -> Result<Vec<IfStatus>, Errno> {
        match self.ioctl(Request::GetIfConf {
            name: name.map(str::to_string),
        })? {
            Reply::IfConf(v) => Ok(v),
            _ => Err(Errno::EIO),
        }
    }

    pub fn ifstatus(&mut self, name: &str) -> Result<IfStatus, Errno> {
        self.ifconf(Some(name))?
            .into_iter()
            .next()
            .ok_or(Errno::ENXIO)
    }

    /// SIOCGIFFLAGS
    pub fn getifflags(&mut self, name: &str) -> Result<u32, Errno> {
        match self.ioctl(Request::GetIfFlags {
            name: name.to_string(),
        })? {
            Reply::Flags(f) => Ok(f),
            _ => Err(Errno::EIO),
        }
    }
}

/// Run ifconfig with `args` (the arguments after the program name)
/// against `ctl`, writing to `out` and `err` as the program would. Returns
/// the exit status. Never panics, whatever the arguments.
pub fn main_with(
    args: &[String],
    ctl: &mut dyn Ioctl,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let (xo, args) = match crate::libxo::take_args(args) {
        Ok(a) => a,
        Err(msg) => {
            let _ = writeln!(err, "ifconfig: {msg}");
            return 1;
        }
    };
    let mut ctx = Ctx { ctl, out, err, xo };
    let inv = match parse::parse(&args) {
        Ok(inv) => inv,
        Err(ParseError::Usage(warning)) => {
            if let Some(w) = warning {
                ctx.warnx(&w);
            }
            let _ = ctx.err.write_all(USAGE.as_bytes());
            return 1;
        }
        Err(ParseError::Fatal(msg)) => return ctx.errx(&msg).0,
    };
    let code = match run(&mut ctx, &inv) {
        Ok(()) => 0,
        Err(Exit(code)) => code,
    };
    let _ = ctx.out.flush();
    code
}

fn run(ctx: &mut Ctx, inv: &Invocation) -> Result<(), Exit> {
    let opts = &inv.opts;
    if opts.deprecated_a {
        ctx.warnx("-A is deprecated");
    }
    match &inv.command {
        Command::Cloners => list_cloners(ctx),
        Command::WaitDad => wait_dad(ctx, opts),
        Command::All { family } => printall(ctx, opts, None, *family),
        Command::Status { ifname, family } => {
            let name = resolve(ctx, ifname);
            if let Err(e) = ctx.getifflags(&name) {
                return Err(ctx.err(&format!("SIOCGIFFLAGS {name}"), e));
            }
            // NetBSD's kernel takes a number for an index (ifunit), but
            // printall matches the names getifaddrs lists: no interface is
            // named "1", so nothing is printed.
            if matches!(ifname, IfName::Index(_)) {
                return Ok(());
            }
            printall(ctx, opts, Some(&name), *family)
        }
        Command::Carrier { ifname } => {
            let name = resolve(ctx, ifname);
            if let Err(e) = ctx.getifflags(&name) {
                return Err(ctx.err(&format!("SIOCGIFFLAGS {name}"), e));
            }
            if carrier(ctx, &name) {
                Ok(())
            } else {
                Err(Exit(1))
            }
        }
        Command::Configure(cfg) => {
            let name = resolve(ctx, &cfg.ifname);
            exec::configure(ctx, cfg, &name)
        }
    }
}

/// The name of an interface given by index; an unknown index stays a
/// number, which then fails as any unknown name does.
fn resolve(ctx: &mut Ctx, ifname: &IfName) -> String {
    match ifname {
        IfName::Name(n) => n.clone(),
        IfName::Index(i) => ctx
            .ifconf(None)
            .ok()
            .and_then(|l| l.into_iter().find(|s| s.index == *i))
            .map_or_else(|| i.to_string(), |s| s.name),
    }
}

/// Whether the link is up or unknown (ifconfig.c carrier()).
fn carrier(ctx: &mut Ctx, name: &str) -> bool {
    ctx.ifstatus(name)
        .is_ok_and(|s| s.link_state != LinkState::Down)
}

fn list_cloners(ctx: &mut Ctx) -> Result<(), Exit> {
    match ctx.ioctl(Request::IfGCloners) {
        Ok(Reply::Cloners(names)) => {
            if ctx.xo.is_json() {
                ctx.xo
                    .emit(ctx.out, &serde_json::json!({ "cloners": names }));
                return Ok(());
            }
            ctx.print(&format!("{}\n", names.join(" ")));
            Ok(())
        }
        Ok(_) => Err(ctx.err("SIOCIFGCLONERS for count", Errno::EIO)),
        Err(e) => Err(ctx.err("SIOCIFGCLONERS for count", e)),
    }
}

/// Status of every interface (or the one named) that passes -b -d -u -s;
/// with -l only their names.
fn printall(
    ctx: &mut Ctx,
    opts: &Opts,
    name: Option<&str>,
    family: Option<Family>,
) -> Result<(), Exit> {
    let list = match ctx.ifconf(name) {
        Ok(l) => l,
        Err(e) => return Err(ctx.err("getifaddrs", e)),
    };
    let show = Show {
        family,
        verbose: opts.verbose || opts.zero,
        human: opts.human,
        lifetimes: opts.lifetimes,
        media_list: opts.media_list,
        resolve: opts.resolve,
    };
    let mut names = Vec::new();
    let mut objects = Vec::new();
    for ifs in list {
        if opts.broadcast_only && ifs.flags & iff::BROADCAST == 0 {
            continue;
        }
        if opts.down_only && ifs.flags & iff::UP != 0 {
            continue;
        }
        if opts.up_only && ifs.flags & iff::UP == 0 {
            continue;
        }
        if opts.skip_down_link && ifs.link_state == LinkState::Down {
            continue;
        }
        if opts.list {
            names.push(ifs.name);
            continue;
        }
        // The family has no socket here: NetBSD fails in getsock.
        if family == Some(Family::AppleTalk) {
            return Err(ctx.err("status: getsock", Errno::EAFNOSUPPORT));
        }
        let data = if opts.zero {
            match ctx.ioctl(Request::ZIfData {
                name: ifs.name.clone(),
            }) {
                Ok(Reply::Data(d)) => Some(d),
                Ok(_) => return Err(ctx.err("SIOCZIFDATA", Errno::EIO)),
                Err(e) => return Err(ctx.err("SIOCZIFDATA", e)),
            }
        } else if opts.verbose {
            Some(ifs.data.clone())
        } else {
            None
        };
        if ctx.xo.is_json() {
            objects.push(status::status_json(&ifs, data.as_ref(), &show));
            continue;
        }
        let block = status::status(&ifs, data.as_ref(), &show);
        ctx.print(&block);
    }
    if ctx.xo.is_json() {
        let doc = if opts.list {
            serde_json::json!({ "names": names })
        } else {
            serde_json::json!({ "interfaces": objects })
        };
        ctx.xo.emit(ctx.out, &doc);
        return Ok(());
    }
    if opts.list {
        ctx.print(&format!("{}\n", names.join(" ")));
    }
    Ok(())
}

/// -w: wait until no address is tentative; with -W, also until none of an
/// up interface is detached, for that long.
fn wait_dad(ctx: &mut Ctx, opts: &Opts) -> Result<(), Exit> {
    let start = Instant::now();
    let secs = opts.wait.unwrap_or(0);
    let end = (secs != 0).then(|| start + Duration::from_secs(secs.into()));
    let end_det = match opts.wait_detached {
        Some(d) if secs != 0 && d != 0 => Some(start + Duration::from_secs(d.into())),
        _ => None,
    };
    loop {
        let list = match ctx.ifconf(None) {
            Ok(l) => l,
            Err(e) => return Err(ctx.err("getifaddrs", e)),
        };
        let now = Instant::now();
        let detaching = end_det.is_some_and(|d| now < d);
        let waiting = list.iter().any(|s| {
            let up = s.flags & iff::UP != 0;
            let in_det = detaching && up;
            s.inet.iter().any(|a| {
                a.flags & in_iff::TENTATIVE != 0 || (in_det && a.flags & in_iff::DETACHED != 0)
            }) || s.inet6.iter().any(|a| {
                a.flags & in6_iff::TENTATIVE != 0 || (in_det && a.flags & in6_iff::DETACHED != 0)
            })
        });
        if !waiting {
            return Ok(());
        }
        std::thread::sleep(WAIT_DAD);
        if end.is_some_and(|e| Instant::now() > e) {
            return Err(ctx.errx("timed out"));
        }
    }
}
