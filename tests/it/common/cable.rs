//! A crossover cable between in-process kernels: `eth<unit>`, an Ethernet
//! whose frames go straight into the port it is plugged into. For tests of
//! what sits above the medium (the IP presence, the bridge) without one.

use ifnet::Kernel;
use ifnet::cloner::{IfClone, KernelEnv};
use ifnet::frame::Frame;
use ifnet::ifnet::{Driver, IfState, IfType};
use ifnet::ioctl::{Errno, iff};
use ifnet::port::{Port, Transmit};
use std::sync::{Arc, Mutex, Weak};

/// Where one end's frames go; filled in by [`plug`] once both ends exist.
pub type Plug = Arc<Mutex<Weak<Port>>>;

/// One end of a cable: what it transmits, the other end receives.
struct End(Plug);

impl Transmit for End {
    fn transmit(&self, frame: &Frame) -> Result<(), Errno> {
        if let Some(p) = self.0.lock().unwrap().upgrade() {
            p.input(frame);
        }
        Ok(())
    }
}

/// The `eth` class: unit `n` is cabled to `peers[n]`; its MAC is
/// 02:00:00:00:<host>:<unit>.
pub struct Cables {
    pub peers: Vec<Plug>,
    pub host: u8,
}

struct CableIf;
impl Driver for CableIf {}

impl IfClone for Cables {
    fn name(&self) -> &'static str {
        "eth"
    }
    fn create(&self, _: &KernelEnv, ifs: &mut IfState) -> Result<Box<dyn Driver>, Errno> {
        let peer = self.peers.get(ifs.unit as usize).ok_or(Errno::ENXIO)?;
        ifs.kind = IfType::Ethernet;
        ifs.flags = iff::BROADCAST | iff::SIMPLEX | iff::MULTICAST;
        ifs.set_lladdr([0x02, 0, 0, 0, self.host, ifs.unit as u8]);
        ifs.port.set_transmit(Some(Arc::new(End(peer.clone()))));
        Ok(Box::new(CableIf))
    }
}

/// Make `p` deliver into interface `name` of kernel `k`.
pub fn plug(p: &Plug, k: &Kernel, name: &str) {
    *p.lock().unwrap() = Arc::downgrade(&k.port(name).unwrap());
}
