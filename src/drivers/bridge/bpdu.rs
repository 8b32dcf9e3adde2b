//! 802.1D bridge protocol data units on the wire: an 802.3 frame to
//! 01:80:c2:00:00:00 whose type field is a length, an 802.2 LLC header
//! (DSAP = SSAP = 0x42, UI), then the BPDU proper. A checked view
//! ([`Bpdu`]) over the LLC bytes and a plain [`BpduRepr`] parsed from and
//! emitted to it, smoltcp style: the view checks lengths once, in
//! [`Bpdu::new_checked`]; every accessor after it trusts them.

use crate::frame::Frame;
use crate::ioctl::Mac;

/// Destination of 802.1D BPDUs (`bstp_etheraddr`).
pub const BSTP_ETHERADDR: Mac = [0x01, 0x80, 0xc2, 0, 0, 0];

/// `LLC_8021D_LSAP`, `LLC_UI`.
const LLC_8021D_LSAP: u8 = 0x42;
const LLC_UI: u8 = 0x03;

/// `BSTP_MSGTYPE_CFG`, `BSTP_MSGTYPE_TCN`.
const MSGTYPE_CFG: u8 = 0x00;
const MSGTYPE_TCN: u8 = 0x80;

/// `BSTP_FLAG_TC`, `BSTP_FLAG_TCA`.
const FLAG_TC: u8 = 0x01;
const FLAG_TCA: u8 = 0x80;

/// LLC header and BPDU of each kind (`struct bstp_tbpdu`, `bstp_cbpdu`).
pub const TCN_LEN: usize = 7;
pub const CONFIG_LEN: usize = 38;

/// The shortest Ethernet frame without its FCS: BPDUs are padded to it.
pub const MIN_FRAME: usize = 60;

mod field {
    use std::ops::Range;
    pub const DSAP: usize = 0;
    pub const SSAP: usize = 1;
    pub const CTL: usize = 2;
    pub const PROTO: Range<usize> = 3..5;
    pub const VERSION: usize = 5;
    pub const TYPE: usize = 6;
    pub const FLAGS: usize = 7;
    pub const ROOT: Range<usize> = 8..16;
    pub const COST: Range<usize> = 16..20;
    pub const BRIDGE: Range<usize> = 20..28;
    pub const PORT: Range<usize> = 28..30;
    pub const AGE: Range<usize> = 30..32;
    pub const MAX_AGE: Range<usize> = 32..34;
    pub const HELLO: Range<usize> = 34..36;
    pub const FWD_DELAY: Range<usize> = 36..38;
}

/// Why bytes sent to the BPDU address are not a BPDU we take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpduError {
    /// The type field is no 802.3 length, or a length beyond the frame.
    Length,
    /// Shorter than its kind needs.
    Truncated,
    /// Not 802.2 LLC to the spanning tree SAP.
    Llc,
    /// Protocol identifier other than 0 (802.1D).
    Protocol,
    /// Protocol version other than 0: RSTP/MSTP, which NetBSD's bridge
    /// ignores too.
    Version,
    /// Neither a configuration nor a topology change BPDU.
    Type,
}

/// A checked view of the LLC header and BPDU of a frame.
#[derive(Debug)]
pub struct Bpdu<T: AsRef<[u8]>> {
    buf: T,
}

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], r: std::ops::Range<usize>) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Bpdu<T> {
    /// Check the LLC header, protocol, version and type, and that the
    /// buffer holds the whole BPDU of that type.
    pub fn new_checked(buf: T) -> Result<Bpdu<T>, BpduError> {
        let b = buf.as_ref();
        if b.len() < TCN_LEN {
            return Err(BpduError::Truncated);
        }
        if b[field::DSAP] != LLC_8021D_LSAP
            || b[field::SSAP] != LLC_8021D_LSAP
            || b[field::CTL] != LLC_UI
        {
            return Err(BpduError::Llc);
        }
        if be16(b, field::PROTO) != 0 {
            return Err(BpduError::Protocol);
        }
        if b[field::VERSION] != 0 {
            return Err(BpduError::Version);
        }
        match b[field::TYPE] {
            MSGTYPE_TCN => {}
            MSGTYPE_CFG if b.len() >= CONFIG_LEN => {}
            MSGTYPE_CFG => return Err(BpduError::Truncated),
            _ => return Err(BpduError::Type),
        }
        Ok(Bpdu { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn is_tcn(&self) -> bool {
        self.b()[field::TYPE] == MSGTYPE_TCN
    }

    // The configuration fields: only for a configuration BPDU, which
    // `new_checked` made sure is long enough.

    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }
    pub fn root_id(&self) -> u64 {
        be64(self.b(), field::ROOT)
    }
    pub fn root_path_cost(&self) -> u32 {
        be32(self.b(), field::COST)
    }
    pub fn bridge_id(&self) -> u64 {
        be64(self.b(), field::BRIDGE)
    }
    pub fn port_id(&self) -> u16 {
        be16(self.b(), field::PORT)
    }
    pub fn message_age(&self) -> u16 {
        be16(self.b(), field::AGE)
    }
    pub fn max_age(&self) -> u16 {
        be16(self.b(), field::MAX_AGE)
    }
    pub fn hello_time(&self) -> u16 {
        be16(self.b(), field::HELLO)
    }
    pub fn forward_delay(&self) -> u16 {
        be16(self.b(), field::FWD_DELAY)
    }
}

/// A configuration BPDU (`struct bstp_config_unit`). Times are in 1/256
/// of a second, as on the wire; ids are priority << 48 | MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConfigBpdu {
    pub root_id: u64,
    pub root_path_cost: u32,
    pub bridge_id: u64,
    pub port_id: u16,
    pub message_age: u16,
    pub max_age: u16,
    pub hello_time: u16,
    pub forward_delay: u16,
    pub topology_change: bool,
    pub topology_change_ack: bool,
}

/// A BPDU we take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpduRepr {
    Config(ConfigBpdu),
    /// Topology change notification.
    Tcn,
}

impl BpduRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Bpdu<T>) -> BpduRepr {
        if p.is_tcn() {
            return BpduRepr::Tcn;
        }
        BpduRepr::Config(ConfigBpdu {
            root_id: p.root_id(),
            root_path_cost: p.root_path_cost(),
            bridge_id: p.bridge_id(),
            port_id: p.port_id(),
            message_age: p.message_age(),
            max_age: p.max_age(),
            hello_time: p.hello_time(),
            forward_delay: p.forward_delay(),
            topology_change: p.flags() & FLAG_TC != 0,
            topology_change_ack: p.flags() & FLAG_TCA != 0,
        })
    }

    /// A BPDU from a frame sent to [`BSTP_ETHERADDR`]: its type field must
    /// be an 802.3 length within the frame; bytes past it (padding) are
    /// not looked at (`bstp_input`'s `m_adj`).
    pub fn from_frame(frame: &Frame) -> Result<BpduRepr, BpduError> {
        let len = usize::from(frame.ethertype());
        let payload = frame.payload();
        if len > 1500 || len > payload.len() {
            return Err(BpduError::Length);
        }
        Bpdu::new_checked(&payload[..len]).map(|p| BpduRepr::parse(&p))
    }

    /// LLC header and BPDU length.
    pub fn buffer_len(&self) -> usize {
        match self {
            BpduRepr::Config(_) => CONFIG_LEN,
            BpduRepr::Tcn => TCN_LEN,
        }
    }

    /// Write the LLC header and BPDU into `buf` (at least `buffer_len`).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DSAP] = LLC_8021D_LSAP;
        buf[field::SSAP] = LLC_8021D_LSAP;
        buf[field::CTL] = LLC_UI;
        buf[field::PROTO].copy_from_slice(&[0, 0]);
        buf[field::VERSION] = 0;
        let c = match self {
            BpduRepr::Tcn => {
                buf[field::TYPE] = MSGTYPE_TCN;
                return;
            }
            BpduRepr::Config(c) => c,
        };
        buf[field::TYPE] = MSGTYPE_CFG;
        buf[field::FLAGS] = if c.topology_change { FLAG_TC } else { 0 }
            | if c.topology_change_ack { FLAG_TCA } else { 0 };
        buf[field::ROOT].copy_from_slice(&c.root_id.to_be_bytes());
        buf[field::COST].copy_from_slice(&c.root_path_cost.to_be_bytes());
        // NetBSD's bstp_send_config_bpdu writes the root id here too, a
        // bug other bridges would take for a claim to be the root: ours
        // is the sender's id, as 802.1D says.
        buf[field::BRIDGE].copy_from_slice(&c.bridge_id.to_be_bytes());
        buf[field::PORT].copy_from_slice(&c.port_id.to_be_bytes());
        buf[field::AGE].copy_from_slice(&c.message_age.to_be_bytes());
        buf[field::MAX_AGE].copy_from_slice(&c.max_age.to_be_bytes());
        buf[field::HELLO].copy_from_slice(&c.hello_time.to_be_bytes());
        buf[field::FWD_DELAY].copy_from_slice(&c.forward_delay.to_be_bytes());
    }

    /// The whole Ethernet frame from `src`, padded to [`MIN_FRAME`].
    pub fn frame(&self, src: Mac) -> [u8; MIN_FRAME] {
        let mut f = [0u8; MIN_FRAME];
        f[..6].copy_from_slice(&BSTP_ETHERADDR);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&(self.buffer_len() as u16).to_be_bytes());
        self.emit(&mut f[14..]);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConfigBpdu {
        ConfigBpdu {
            root_id: 0x8000_0200_0000_0001,
            root_path_cost: 55,
            bridge_id: 0x8000_0200_0000_0002,
            port_id: 0x8003,
            message_age: 256,
            max_age: 20 * 256,
            hello_time: 2 * 256,
            forward_delay: 15 * 256,
            topology_change: true,
            topology_change_ack: false,
        }
    }

    fn parse(f: &[u8]) -> Result<BpduRepr, BpduError> {
        BpduRepr::from_frame(&Frame::new(f).unwrap())
    }

    #[test]
    fn round_trip() {
        for r in [BpduRepr::Config(config()), BpduRepr::Tcn] {
            let f = r.frame([2, 0, 0, 0, 0, 9]);
            assert_eq!(parse(&f), Ok(r));
            assert_eq!(&f[..6], &BSTP_ETHERADDR);
        }
    }

    /// A configuration BPDU as Linux's bridge sends it (captured layout).
    #[test]
    fn linux_bytes() {
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56];
        f.extend_from_slice(&[0x00, 0x26, 0x42, 0x42, 0x03, 0, 0, 0, 0, 0x00]);
        f.extend_from_slice(&[0x80, 0x00, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(&[0x80, 0x00, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        f.extend_from_slice(&[0x80, 0x01, 0, 0, 0x06, 0, 0x01, 0, 0x04, 0]);
        f.resize(60, 0);
        let Ok(BpduRepr::Config(c)) = parse(&f) else {
            panic!()
        };
        assert_eq!(c.root_id, 0x8000_5254_0012_3456);
        assert_eq!(c.bridge_id, c.root_id);
        assert_eq!((c.port_id, c.message_age), (0x8001, 0));
        assert_eq!(
            (c.max_age, c.hello_time, c.forward_delay),
            (1536, 256, 1024)
        );
        assert!(!c.topology_change);
    }

    #[test]
    fn bad_input_is_refused() {
        let good = BpduRepr::Config(config()).frame([2, 0, 0, 0, 0, 9]);
        let with = |i: usize, v: u8| {
            let mut f = good;
            f[i] = v;
            parse(&f)
        };
        // Truncated: the length says fewer bytes than a configuration BPDU.
        assert_eq!(with(13, 20), Err(BpduError::Truncated));
        assert_eq!(with(13, 3), Err(BpduError::Truncated));
        assert_eq!(parse(&good[..14 + 20]), Err(BpduError::Length));
        // An Ethernet II type, or a length beyond the frame.
        assert_eq!(with(12, 0x08), Err(BpduError::Length));
        assert_eq!(with(13, 47), Err(BpduError::Length));
        assert_eq!(with(14, 0xaa), Err(BpduError::Llc));
        assert_eq!(with(16, 0x13), Err(BpduError::Llc));
        assert_eq!(with(18, 1), Err(BpduError::Protocol));
        assert_eq!(with(19, 2), Err(BpduError::Version));
        assert_eq!(with(20, 0x02), Err(BpduError::Type));
        // Oversized: bytes past the length are padding.
        let mut long = good.to_vec();
        long.resize(1514, 0xee);
        assert_eq!(parse(&long), Ok(BpduRepr::Config(config())));
        assert_eq!(parse(&good[..14]), Err(BpduError::Length));
    }
}
