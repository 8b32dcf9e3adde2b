//! shmif(4): Ethernet over a shared-memory bus file, compatible with
//! NetBSD rump kernels on the same file.
//!
//! - [`bus`]: the bus format, lock and reader (shared with `shmifdump`,
//!   whose printer is `crate::shmifdump`).
//! - this module: the interface class and driver. Sending takes the bus
//!   lock and copies the frame into the ring; a waker thread does the
//!   wakeup write, coalescing back-to-back frames into one. Receiving is a
//!   thread per interface that is up, woken by inotify, copying up to 32
//!   frames per hold of the lock into a reused batch (no allocation per
//!   frame) and handing each to `Port::input`.
//!
//! Where we differ from NetBSD, on purpose:
//! - `linkstr` on a non-empty file that is not a bus (wrong magic, either
//!   byte order, or too short) fails with ENOEXEC and leaves the file as it
//!   was; NetBSD resizes it to 1 MiB first. An empty file, a 1 MiB file
//!   whose magic is still 0 (a peer is creating it), or 8 bytes holding
//!   only a wakeup write (a bus truncated to nothing as a peer woke the
//!   others), becomes a bus.
//! - A bus lock held for a second while `gen` and `last` stay still is
//!   taken from its (presumed dead) holder, logged; see [`bus::Bus::lock`].
//! - Frame time stamps are wall-clock time, so captures show real times;
//!   NetBSD kernels write their uptime.
//! - Each time the receive thread is lapped, `iqdrops` grows by one (the
//!   number of frames lost is not knowable from the ring).
//! - A bus file shrunk while attached is given up: found short at a
//!   wakeup, or cut short under a read or write of the mapping (the SIGBUS
//!   that raises is caught, see [`fault`]), it is logged once, counted as
//!   an input or output error, its link goes down and the mapping is let
//!   go of; `-linkstr` / `linkstr` attach another.

pub mod bus;
mod fault;

use crate::cloner::{IfClone, KernelEnv, KernelHook};
use crate::frame::Frame;
use crate::ifnet::{Driver, IfState, IfType};
use crate::ioctl::{Errno, IfMedia, LinkState, Request, iff};
use crate::port::{Port, Transmit};
use bus::{Batch, Bus, BusReader, Recv};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const MEDIA_AUTO: &str = "Ethernet autoselect";
const MEDIA_NONE: &str = "Ethernet none";

/// How long the receive thread sleeps without an inotify event before it
/// looks at the ring anyway.
const RX_POLL: Duration = Duration::from_millis(100);

/// After a wakeup write, the waker lets this pass before the next one, so
/// that a busy sender announces many frames per write (instead of burning
/// a CPU on back-to-back writes). A lone frame is announced at once.
const WAKE_COALESCE: Duration = Duration::from_micros(50);

/// Frames the receive thread copies out per hold of the bus lock.
const RX_BATCH: usize = 32;

#[derive(Default)]
pub struct ShmifClone {
    hook: Mutex<Option<KernelHook>>,
}

impl IfClone for ShmifClone {
    fn name(&self) -> &'static str {
        "shmif"
    }

    fn attach(&self, _env: &KernelEnv, hook: &KernelHook) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook.clone());
    }

    fn create(&self, _env: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        // As NetBSD 10: one random number is the sender id and gives the MAC.
        let id = bus::random_u64();
        let r = id.to_ne_bytes();
        ifs.kind = IfType::Ethernet;
        ifs.mtu = 1500;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.set_lladdr([0xb2, 0xa0, r[0], r[1], r[2], r[3]]);
        ifs.link_state = LinkState::Unknown;
        let hook = self
            .hook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(KernelHook::detached);
        Ok(Box::new(Shmif {
            sender: id,
            port: ifs.port.clone(),
            hook,
            link_up: Arc::new(AtomicBool::new(false)),
            media_none: false,
            attached: None,
            rx: None,
        }))
    }
}

struct Attached {
    /// None once the bus was lost (its file cut short).
    bus: Option<Arc<Bus>>,
    loss: Arc<Loss>,
    linkstr: String,
}

/// How the data path of one attachment reports its bus lost: once, and to
/// the kernel, which has `Driver::sync` let go of it.
struct Loss {
    hook: KernelHook,
    reported: AtomicBool,
}

impl Loss {
    fn report(&self, port: &Port, bus: &Bus) {
        if !self.reported.swap(true, SeqCst) {
            crate::log::warn(&format!(
                "{}: bus file {} was truncated",
                port.name,
                bus.path().display()
            ));
            self.hook.sync(port.index);
        }
    }
}

struct Shmif {
    sender: u64,
    port: Arc<Port>,
    hook: KernelHook,
    /// Link state is up: frames go out and come in.
    link_up: Arc<AtomicBool>,
    media_none: bool,
    attached: Option<Attached>,
    rx: Option<RxThread>,
}

impl Shmif {
    fn set_link(&mut self, ifs: &mut IfState, state: LinkState) {
        ifs.link_state = state;
        self.link_up.store(state == LinkState::Up, SeqCst);
    }

    /// The link state of an attached interface.
    fn attached_link(&self) -> LinkState {
        let lost = self.attached.as_ref().is_some_and(|a| a.bus.is_none());
        if self.media_none || lost {
            LinkState::Down
        } else {
            LinkState::Up
        }
    }

    fn stop_rx(&mut self) {
        if let Some(rx) = self.rx.take() {
            rx.stop.store(true, SeqCst);
            // The wakeup NetBSD writes when an interface stops; it also
            // wakes our own thread.
            if let Some(bus) = self.attached.as_ref().and_then(|a| a.bus.as_ref()) {
                let _ = bus.wakeup();
            }
            let _ = rx.handle.join();
        }
    }

    fn detach(&mut self, ifs: &mut IfState) {
        self.stop_rx();
        self.port.set_transmit(None);
        self.attached = None;
        self.set_link(ifs, LinkState::Unknown);
    }
}

/// A kernel dropped with the interface still up (no destroy): the
/// receive thread and the transmitter, which holds the port, go too.
impl Drop for Shmif {
    fn drop(&mut self) {
        self.stop_rx();
        self.port.set_transmit(None);
    }
}

impl Driver for Shmif {
    fn init(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        let Some((bus, loss)) = self
            .attached
            .as_ref()
            .and_then(|a| Some((a.bus.clone()?, a.loss.clone())))
        else {
            return Err(Errno::ENXIO);
        };
        if self.rx.is_none() {
            self.rx = Some(RxThread::start(Rx {
                bus,
                port: self.port.clone(),
                sender: self.sender,
                link_up: self.link_up.clone(),
                loss,
            })?);
        }
        ifs.set_flags(ifs.flags | iff::RUNNING);
        Ok(())
    }

    fn stop(&mut self, ifs: &mut IfState) {
        self.stop_rx();
        ifs.set_flags(ifs.flags & !iff::RUNNING);
    }

    fn set_linkstr(&mut self, ifs: &mut IfState, linkstr: Option<&str>) -> Result<(), Errno> {
        if ifs.flags & iff::UP != 0 {
            return Err(Errno::EBUSY);
        }
        let Some(path) = linkstr else {
            self.detach(ifs);
            return Ok(());
        };
        if self.attached.as_ref().is_some_and(|a| a.bus.is_some()) {
            return Err(Errno::EBUSY);
        }
        // The client resolves a relative path (ifconfig does): one that
        // arrives relative would be resolved against the daemon's cwd.
        if !Path::new(path).is_absolute() {
            return Err(Errno::EINVAL);
        }
        let bus = Arc::new(Bus::attach(Path::new(path))?);
        let loss = Arc::new(Loss {
            hook: self.hook.clone(),
            reported: AtomicBool::new(false),
        });
        self.port.set_transmit(Some(Arc::new(ShmifTx {
            waker: Waker::start(bus.clone())?,
            bus: bus.clone(),
            sender: self.sender,
            link_up: self.link_up.clone(),
            loss: loss.clone(),
            port: self.port.clone(),
        })));
        self.attached = Some(Attached {
            bus: Some(bus),
            loss,
            linkstr: path.to_string(),
        });
        self.set_link(ifs, self.attached_link());
        Ok(())
    }

    fn linkstr(&self) -> Option<String> {
        self.attached.as_ref().map(|a| a.linkstr.clone())
    }

    fn media(&self, ifs: &IfState) -> Option<IfMedia> {
        Some(IfMedia {
            current: if self.media_none {
                MEDIA_NONE
            } else {
                MEDIA_AUTO
            }
            .to_string(),
            active: Some(ifs.link_state == LinkState::Up),
            supported: vec![MEDIA_AUTO.to_string(), MEDIA_NONE.to_string()],
        })
    }

    fn set_media(&mut self, ifs: &mut IfState, media: &str) -> Result<(), Errno> {
        let word = media.trim().to_ascii_lowercase();
        let word = word.strip_prefix("ethernet ").unwrap_or(&word).trim();
        match word {
            "none" => {
                self.media_none = true;
                self.set_link(ifs, LinkState::Down);
            }
            "auto" | "autoselect" => {
                self.media_none = false;
                self.set_link(ifs, self.attached_link());
            }
            _ => return Err(Errno::ENXIO),
        }
        Ok(())
    }

    fn destroy(&mut self, ifs: &mut IfState) -> Result<(), Errno> {
        self.detach(ifs);
        Ok(())
    }

    /// The data path found the bus file cut short: stop using it (the
    /// receive thread and transmitter go, and with them the mapping) and
    /// take the link down. The linkstr stays on show until changed.
    fn sync(&mut self, ifs: &mut IfState) -> Vec<Request> {
        let lost = self
            .attached
            .as_ref()
            .and_then(|a| a.bus.as_ref())
            .is_some_and(|b| b.truncated());
        if lost {
            self.stop_rx();
            self.port.set_transmit(None);
            if let Some(a) = &mut self.attached {
                a.bus = None;
            }
            ifs.set_flags(ifs.flags & !iff::RUNNING);
            self.set_link(ifs, self.attached_link());
        }
        Vec::new()
    }
}

/// The transmit side of an attached interface.
struct ShmifTx {
    bus: Arc<Bus>,
    sender: u64,
    link_up: Arc<AtomicBool>,
    waker: Waker,
    loss: Arc<Loss>,
    port: Arc<Port>,
}

impl Transmit for ShmifTx {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        if !self.link_up.load(Relaxed) {
            return Err(Errno::ENETDOWN);
        }
        match self.bus.send(frame.bytes(), self.sender) {
            // Counted as an output error by the port.
            Err(e) if self.bus.truncated() => {
                self.loss.report(&self.port, &self.bus);
                return Err(e);
            }
            r => r?,
        }
        self.waker.kick();
        Ok(())
    }
}

/// Does the wakeup write for a sender, off its path: a frame only sets a
/// flag (and unparks the waker if it sleeps); frames sent while a write is
/// under way share the next one.
struct Waker {
    shared: Arc<WakerShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct WakerShared {
    pending: AtomicBool,
    stop: AtomicBool,
}

impl Waker {
    fn start(bus: Arc<Bus>) -> Result<Waker, Errno> {
        let shared = Arc::new(WakerShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("shmif-waker".into())
            .spawn(move || {
                loop {
                    // Acquire pairs with the sender's release: the frame is
                    // in the ring before the write that announces it.
                    if s.pending.swap(false, SeqCst) {
                        let _ = bus.wakeup();
                        // Under load, let frames gather before the next
                        // write rather than spend a CPU on wakeups: the
                        // ring holds far longer than this.
                        std::thread::sleep(WAKE_COALESCE);
                        continue;
                    }
                    if s.stop.load(SeqCst) {
                        break;
                    }
                    std::thread::park();
                }
            })
            .map_err(Errno::from)?;
        Ok(Waker {
            shared,
            thread: Some(thread),
        })
    }

    fn kick(&self) {
        if !self.shared.pending.swap(true, SeqCst)
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The receive thread of an interface that is up.
struct RxThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// What the receive thread works with.
struct Rx {
    bus: Arc<Bus>,
    port: Arc<Port>,
    /// Our sender id: our own frames are skipped.
    sender: u64,
    link_up: Arc<AtomicBool>,
    loss: Arc<Loss>,
}

impl RxThread {
    fn start(rx: Rx) -> Result<RxThread, Errno> {
        let watch = bus::Watch::new(&rx.bus)?;
        // Reset on every up: the newest frame on the bus is read again.
        let reader = BusReader::at_newest(&rx.bus);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("shmif-rx-{}", rx.port.name))
            .spawn(move || rx_loop(&rx, &s, &watch, reader))
            .map_err(Errno::from)?;
        Ok(RxThread { stop, handle })
    }
}

/// Last warning time, so that a broken bus does not flood the log.
static WARNED: Mutex<Option<std::time::Instant>> = Mutex::new(None);

fn warn_limited(msg: &str) {
    let mut w = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *w = Some(std::time::Instant::now());
        crate::log::warn(msg);
    }
}

/// Receive until stopped: drain the ring, then wait for a wakeup.
fn rx_loop(rx: &Rx, stop: &AtomicBool, watch: &bus::Watch, mut reader: BusReader) {
    use std::sync::atomic::Ordering::Relaxed;
    let Rx {
        bus,
        port,
        sender,
        link_up,
        loss,
    } = rx;
    let sender = *sender;
    let mut batch = Batch::new(RX_BATCH);
    let mut laps = reader.laps;
    let mut lost = false;
    let mut unlinked = false;
    'wake: while !stop.load(Relaxed) {
        let intact = bus.intact();
        if !unlinked && bus.unlinked() {
            // Not an error: the attached peers keep talking. Say why a
            // newcomer on the same path does not hear them.
            unlinked = true;
            crate::log::warn(&format!(
                "{}: bus file {} was removed; attached peers keep this bus, new ones get another",
                port.name,
                bus.path().display()
            ));
        }
        // Found short here, or cut short under a read: never touch it
        // again, and wait for the driver to stop us.
        if !intact {
            if !lost {
                lost = true;
                port.counters.ierrors.fetch_add(1, Relaxed);
                loss.report(port, bus);
            }
            watch.wait(RX_POLL);
            continue;
        }
        loop {
            let r = reader.recv_batch(bus, &mut batch, |h| h.sender != sender);
            if reader.laps != laps {
                port.counters.iqdrops.fetch_add(reader.laps - laps, Relaxed);
                laps = reader.laps;
                crate::log::debug(&format!("{}: lapped on the bus, frames lost", port.name));
            }
            if batch.runts > 0 {
                port.counters
                    .ierrors
                    .fetch_add(u64::from(batch.runts), Relaxed);
            }
            // shmif's filter: link down drops everything; then our MAC,
            // group addresses, or promiscuous mode.
            if link_up.load(Relaxed) {
                let promisc = port.flags() & iff::PROMISC != 0;
                // The bus hands over no runts (counted above).
                let frames = batch
                    .frames
                    .iter()
                    .filter_map(|f| Frame::new(batch.frame(f)));
                for frame in frames {
                    if promisc || frame.is_multicast() || port.is_own_mac(&frame.dst()) {
                        port.input(&frame);
                    }
                }
            }
            match r {
                Recv::Skipped => {}
                Recv::Lost => continue 'wake,
                Recv::Garbage => {
                    port.counters.ierrors.fetch_add(1, Relaxed);
                    warn_limited(&format!(
                        "{}: garbage frame on bus {}, skipped",
                        port.name,
                        bus.path().display()
                    ));
                    break;
                }
                Recv::Corrupt => {
                    port.counters.ierrors.fetch_add(1, Relaxed);
                    warn_limited(&format!(
                        "{}: bus {} header corrupt",
                        port.name,
                        bus.path().display()
                    ));
                    break;
                }
                _ => break,
            }
            if stop.load(Relaxed) {
                return;
            }
        }
        watch.wait(RX_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloner::Cloners;
    use crate::drivers::lo::LoClone;
    use crate::ioctl::{IfStatus, Reply, Request};
    use crate::kernel::Kernel;

    fn kernel() -> Kernel {
        let classes: Vec<Box<dyn IfClone>> = vec![Box::new(LoClone), Box::<ShmifClone>::default()];
        Kernel::new(KernelEnv::default(), Cloners::new(classes))
    }

    fn status(k: &Kernel, name: &str) -> IfStatus {
        match k.ioctl(Request::GetIfConf {
            name: Some(name.into()),
        }) {
            Ok(Reply::IfConf(mut v)) => v.remove(0),
            r => panic!("{r:?}"),
        }
    }

    fn linkstr(k: &Kernel, name: &str, l: Option<&str>) -> Result<Reply, Errno> {
        k.ioctl(Request::SetLinkStr {
            name: name.into(),
            linkstr: l.map(String::from),
        })
    }

    fn flags(k: &Kernel, name: &str, f: u32) -> Result<Reply, Errno> {
        k.ioctl(Request::SetIfFlags {
            name: name.into(),
            flags: f,
        })
    }

    fn media(k: &Kernel, name: &str, m: &str) -> Result<Reply, Errno> {
        k.ioctl(Request::SetIfMedia {
            name: name.into(),
            media: m.into(),
        })
    }

    #[test]
    fn create_attach_up_down_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let p = path.to_str().unwrap();
        let k = kernel();
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        let s = status(&k, "shmif0");
        assert_eq!(s.flags, 0x8802);
        assert_eq!(s.mtu, 1500);
        assert_eq!(&s.lladdr.unwrap()[..2], &[0xb2, 0xa0]);
        assert_eq!(s.link_state, LinkState::Unknown);
        assert_eq!(s.linkstr, None);
        assert_eq!(flags(&k, "shmif0", iff::UP), Err(Errno::ENXIO));
        linkstr(&k, "shmif0", Some(p)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            bus::BUS_SIZE as u64
        );
        let s = status(&k, "shmif0");
        assert_eq!(s.linkstr.as_deref(), Some(p));
        assert_eq!(s.link_state, LinkState::Up);
        let m = s.media.unwrap();
        assert_eq!((m.current.as_str(), m.active), (MEDIA_AUTO, Some(true)));
        assert_eq!(linkstr(&k, "shmif0", Some(p)), Err(Errno::EBUSY));
        flags(&k, "shmif0", iff::UP).unwrap();
        assert_eq!(status(&k, "shmif0").flags, 0x8843);
        assert_eq!(linkstr(&k, "shmif0", None), Err(Errno::EBUSY));
        media(&k, "shmif0", "none").unwrap();
        let s = status(&k, "shmif0");
        assert_eq!(s.link_state, LinkState::Down);
        assert_eq!(s.media.unwrap().current, MEDIA_NONE);
        assert_eq!(k.send("shmif0", &[0xff; 60]), Err(Errno::ENETDOWN));
        media(&k, "shmif0", "auto").unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Up);
        k.send("shmif0", &[0xff; 60]).unwrap();
        assert_eq!(k.send("shmif0", &[0xff; 1515]), Err(Errno::EMSGSIZE));
        assert_eq!(k.send("shmif0", &[0xff; 13]), Err(Errno::EINVAL));
        // Up and down keep the link state.
        flags(&k, "shmif0", 0).unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Up);
        linkstr(&k, "shmif0", None).unwrap();
        assert_eq!(status(&k, "shmif0").link_state, LinkState::Unknown);
        linkstr(&k, "shmif0", Some(p)).unwrap();
        flags(&k, "shmif0", iff::UP).unwrap();
        // Destroy while up.
        k.ioctl(Request::IfDestroy {
            name: "shmif0".into(),
        })
        .unwrap();
        assert!(k.port("shmif0").is_none());
    }

    #[test]
    fn not_a_bus_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        std::fs::write(&path, b"my thesis, chapter 1").unwrap();
        let k = kernel();
        k.ioctl(Request::IfCreate {
            name: "shmif0".into(),
        })
        .unwrap();
        assert_eq!(linkstr(&k, "shmif0", path.to_str()), Err(Errno::ENOEXEC));
        assert_eq!(std::fs::read(&path).unwrap(), b"my thesis, chapter 1");
        assert_eq!(Errno::ENOEXEC.to_string(), "Exec format error");
        // A byte-swapped bus is not ours to write either.
        let mut img = vec![0u8; bus::BUS_SIZE];
        img[0..4].copy_from_slice(&bus::MAGIC.swap_bytes().to_ne_bytes());
        std::fs::write(&path, &img).unwrap();
        assert_eq!(linkstr(&k, "shmif0", path.to_str()), Err(Errno::ENOEXEC));
        assert_eq!(std::fs::read(&path).unwrap(), img);
    }

    /// The next test frame (ethertype 0x88b5), passing over what a kernel
    /// sends of its own accord (neighbour discovery on up).
    fn next_ours(
        rx: &crate::port::FrameReceiver,
        t: Duration,
    ) -> Result<Vec<u8>, std::sync::mpsc::RecvTimeoutError> {
        loop {
            let f = rx.recv_timeout(t)?;
            if f[12..14] == [0x88, 0xb5] {
                return Ok(f);
            }
        }
    }

    fn frame(dst: [u8; 6], src: [u8; 6], tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14] = tag;
        f
    }

    #[test]
    fn two_kernels_one_bus() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bus");
        let ks: Vec<Kernel> = (0..2).map(|_| kernel()).collect();
        let mut rxs = Vec::new();
        let mut macs = Vec::new();
        for k in &ks {
            k.ioctl(Request::IfCreate {
                name: "shmif0".into(),
            })
            .unwrap();
            linkstr(k, "shmif0", p.to_str()).unwrap();
            flags(k, "shmif0", iff::UP).unwrap();
            rxs.push(k.listen("shmif0").unwrap());
            macs.push(status(k, "shmif0").lladdr.unwrap());
        }
        let bcast = [0xff; 6];
        ks[0].send("shmif0", &frame(bcast, macs[0], 1)).unwrap();
        ks[0].send("shmif0", &frame(macs[1], macs[0], 2)).unwrap();
        ks[0]
            .send("shmif0", &frame([0xb2, 0xa0, 9, 9, 9, 9], macs[0], 3))
            .unwrap();
        ks[1].send("shmif0", &frame(macs[0], macs[1], 4)).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 1);
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 2);
        assert_eq!(next_ours(&rxs[0], t).unwrap()[14], 4);
        // Nobody got its own frames, nor the unicast to a stranger.
        let quiet = Duration::from_millis(200);
        assert!(next_ours(&rxs[0], quiet).is_err());
        assert!(next_ours(&rxs[1], quiet).is_err());
        let s1 = status(&ks[1], "shmif0");
        assert!(s1.data.ipackets >= 2);
        assert!(s1.data.opackets >= 1);
        // Promiscuous: the stranger's frame arrives too.
        flags(&ks[1], "shmif0", iff::UP | iff::PROMISC).ok();
        ks[1]
            .port("shmif0")
            .unwrap()
            .set_flags(iff::UP | iff::RUNNING | iff::PROMISC);
        ks[0]
            .send("shmif0", &frame([0xb2, 0xa0, 9, 9, 9, 9], macs[0], 5))
            .unwrap();
        assert_eq!(next_ours(&rxs[1], t).unwrap()[14], 5);
    }

    #[test]
    fn garbage_on_the_bus_is_dropped_and_the_link_keeps_working() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bus");
        let ks: Vec<Kernel> = (0..2).map(|_| kernel()).collect();
        for k in &ks {
            k.ioctl(Request::IfCreate {
                name: "shmif0".into(),
            })
            .unwrap();
            linkstr(k, "shmif0", p.to_str()).unwrap();
            flags(k, "shmif0", iff::UP).unwrap();
        }
        let rx = ks[1].listen("shmif0").unwrap();
        let mac0 = status(&ks[0], "shmif0").lladdr.unwrap();
        ks[0].send("shmif0", &frame([0xff; 6], mac0, 1)).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(next_ours(&rx, t).unwrap()[14], 1);
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        // Wild offsets in the header, then a header with an impossible
        // length where the next frame goes.
        f.write_at(&0xffff_fff0u32.to_ne_bytes(), 20).unwrap();
        f.write_at(&0x0012_3456u32.to_ne_bytes(), 16).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        f.write_at(&0x400u32.to_ne_bytes(), 20).unwrap();
        f.write_at(&bus::DATASIZE.to_ne_bytes(), 16).unwrap();
        f.write_at(&0xdead_beefu32.to_ne_bytes(), 32 + 0x400)
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // The writer steps over the garbage as every peer would; after a
        // resync the reader gets frames again.
        let mut got = Vec::new();
        for tag in 2..40u8 {
            ks[0].send("shmif0", &frame([0xff; 6], mac0, tag)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            while let Ok(f) = next_ours(&rx, Duration::ZERO) {
                got.push(f[14]);
            }
        }
        while let Ok(f) = next_ours(&rx, Duration::from_millis(500)) {
            got.push(f[14]);
        }
        assert!(got.contains(&39), "{got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert!(status(&ks[1], "shmif0").data.ierrors > 0);
    }
}
