//! bridge(4) behaviour and brconfig(8) output, through the real kernel,
//! the real data plane and the brconfig library. Members are a test class
//! whose transmitter records frames in a bounded channel; frames enter
//! with `Port::input`, as a driver's receive thread would.

mod brconfig;
mod forwarding;
mod stp;

use ifnet::Kernel;
use ifnet::cloner::{Cloners, IfClone, KernelEnv};
use ifnet::drivers::bridge::{BridgeClone, Clock};
use ifnet::drivers::lo::LoClone;
use ifnet::frame::Frame;
use ifnet::ifnet::{Driver, IfState, IfType};
use ifnet::ioctl::{Errno, IfStatus, Mac, Reply, Request, iff};
use ifnet::port::Transmit;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Where 802.1D BPDUs go.
pub const BPDU_DST: Mac = [0x01, 0x80, 0xc2, 0, 0, 0];

/// How many frames a test member holds before refusing more.
pub const WIRE_QUEUE: usize = 64;

/// Time as the bridge sees it, moved by the test.
#[derive(Default)]
pub struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn uptime(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type Wires = Arc<Mutex<HashMap<String, Receiver<Vec<u8>>>>>;

/// Stands in for shmif(4) (same name, so the NetBSD test greps read the
/// same): Ethernet, MAC b2:a0:<unit>0:00:00:01, frames sent go to a
/// bounded channel the test reads.
struct TestEther {
    wires: Wires,
    queue: usize,
}

struct Wire(SyncSender<Vec<u8>>);

impl Transmit for Wire {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        match self.0.try_send(frame.bytes().to_vec()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Errno(libc::ENOBUFS)),
            Err(TrySendError::Disconnected(_)) => Err(Errno::ENXIO),
        }
    }
}

struct TestDriver;
impl Driver for TestDriver {}

impl IfClone for TestEther {
    fn name(&self) -> &'static str {
        "shmif"
    }

    fn create(&self, _env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        ifs.kind = IfType::Ethernet;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.set_lladdr(mac_of(ifs.unit));
        let (tx, rx) = sync_channel(self.queue);
        ifs.port.set_transmit(Some(Arc::new(Wire(tx))));
        self.wires.lock().unwrap().insert(ifs.name.clone(), rx);
        Ok(Box::new(TestDriver))
    }
}

/// The MAC of test member `shmif<unit>`.
pub fn mac_of(unit: u32) -> Mac {
    [0xb2, 0xa0, (unit as u8 + 1) << 4, 0, 0, 1]
}

/// A host behind a member, by number.
pub fn host(n: u8) -> Mac {
    [0x02, 0, 0, 0, 0, n]
}

pub const BCAST: Mac = [0xff; 6];

pub fn ntoa(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An Ethernet frame; the payload tells frames apart.
pub fn frame(dst: Mac, src: Mac, tag: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[tag; 46]);
    f
}

pub struct Net {
    pub k: Kernel,
    pub clock: Arc<TestClock>,
    wires: Wires,
}

impl Default for Net {
    fn default() -> Net {
        Net::with_queue(WIRE_QUEUE)
    }
}

impl Net {
    pub fn new() -> Net {
        Net::default()
    }

    pub fn with_queue(queue: usize) -> Net {
        let clock = Arc::new(TestClock::default());
        let wires = Wires::default();
        let cloners = Cloners::new(vec![
            Box::new(BridgeClone::with_clock(clock.clone())),
            Box::new(LoClone),
            Box::new(TestEther {
                wires: wires.clone(),
                queue,
            }),
        ]);
        // No automatic IPv6 link-local: the wires carry only the test's
        // frames, so where each one lands and every counter is exact.
        let env = KernelEnv {
            no_auto_linklocal: true,
            ..KernelEnv::default()
        };
        Net {
            k: Kernel::new(env, cloners),
            clock,
            wires,
        }
    }

    /// bridge0 up with members shmif0..shmif<n-1>, all up.
    pub fn bridged(n: u32) -> Net {
        let net = Net::new();
        net.setup(n);
        net
    }

    pub fn setup(&self, n: u32) {
        self.ifconfig_create("bridge0");
        self.up("bridge0");
        for u in 0..n {
            let name = format!("shmif{u}");
            self.ifconfig_create(&name);
            self.up(&name);
            self.ok(&format!("bridge0 add {name}"));
        }
    }

    pub fn ifconfig_create(&self, name: &str) {
        self.k
            .ioctl(Request::IfCreate { name: name.into() })
            .unwrap();
    }

    pub fn set_flags(&self, name: &str, flags: u32) -> Result<Reply, Errno> {
        self.k.ioctl(Request::SetIfFlags {
            name: name.into(),
            flags,
        })
    }

    pub fn up(&self, name: &str) {
        let f = self.flags(name);
        self.set_flags(name, f | iff::UP).unwrap();
    }

    pub fn down(&self, name: &str) {
        let f = self.flags(name);
        self.set_flags(name, f & !iff::UP).unwrap();
    }

    pub fn flags(&self, name: &str) -> u32 {
        match self.k.ioctl(Request::GetIfFlags { name: name.into() }) {
            Ok(Reply::Flags(f)) => f,
            r => panic!("{r:?}"),
        }
    }

    pub fn ifstatus(&self, name: &str) -> IfStatus {
        match self.k.ioctl(Request::GetIfConf {
            name: Some(name.into()),
        }) {
            Ok(Reply::IfConf(mut v)) => v.remove(0),
            r => panic!("{r:?}"),
        }
    }

    pub fn destroy(&self, name: &str) {
        self.k
            .ioctl(Request::IfDestroy { name: name.into() })
            .unwrap();
    }

    /// Run brconfig with the words of `line`: (exit status, stdout, stderr).
    pub fn brconfig(&self, line: &str) -> (i32, String, String) {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        self.brconfig_args(&args)
    }

    pub fn brconfig_args(&self, args: &[String]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut ctl = &self.k;
        let rc = ifnet::brconfig::main_with(args, &mut ctl, &mut out, &mut err);
        (
            rc,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// brconfig that must succeed; its stdout.
    pub fn ok(&self, line: &str) -> String {
        let (rc, out, err) = self.brconfig(line);
        assert_eq!((rc, err.as_str()), (0, ""), "brconfig {line}");
        out
    }

    /// brconfig that must fail; its stderr.
    pub fn fails(&self, line: &str) -> String {
        let (rc, out, err) = self.brconfig(line);
        assert_eq!((rc, out.as_str()), (1, ""), "brconfig {line}");
        err
    }

    /// The `brconfig bridge0 addr` lines.
    pub fn addr(&self) -> String {
        self.ok("bridge0 addr")
    }

    /// A frame arrives on `name` from its wire (a runt is an input error).
    pub fn inject(&self, name: &str, f: &[u8]) {
        let port = self.k.port(name).unwrap();
        match Frame::new(f) {
            Some(f) => port.input(&f),
            None => port.input_error(),
        }
    }

    /// What `name` put on its wire since the last look.
    pub fn sent(&self, name: &str) -> Vec<Vec<u8>> {
        let wires = self.wires.lock().unwrap();
        wires[name].try_iter().collect()
    }

    /// Which of shmif0..shmif<n-1> sent `f` (once each) since the last look;
    /// fails if any sent something else.
    pub fn arrived(&self, n: u32, f: &[u8]) -> Vec<String> {
        let mut at = Vec::new();
        for u in 0..n {
            let name = format!("shmif{u}");
            // The bridge's own BPDUs (spanning tree) are not traffic.
            let mut got = self.sent(&name);
            got.retain(|g| !(g[..6] == BPDU_DST && g[6..12] == mac_of(u)));
            assert!(got.iter().all(|g| g == f), "{name} sent something else");
            assert!(got.len() <= 1, "{name} sent it {} times", got.len());
            if !got.is_empty() {
                at.push(name);
            }
        }
        at
    }

    pub fn advance(&self, secs: u64) {
        self.clock.0.fetch_add(secs, Ordering::Relaxed);
    }
}
