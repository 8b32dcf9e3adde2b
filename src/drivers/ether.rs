//! What Ethernet drivers with a single, automatic medium share (virt, tap).

use crate::ioctl::{Errno, IfMedia};

pub const MEDIA_AUTO: &str = "Ethernet autoselect";

/// SIOCGIFMEDIA for a driver whose only medium is autoselect.
pub fn autoselect_media(active: bool) -> IfMedia {
    IfMedia {
        current: MEDIA_AUTO.into(),
        active: Some(active),
        supported: vec![MEDIA_AUTO.into()],
    }
}

/// SIOCSIFMEDIA for such a driver: autoselect is accepted, anything else
/// is a medium it does not have.
pub fn set_autoselect_media(media: &str) -> Result<(), Errno> {
    match media {
        "autoselect" | "auto" | MEDIA_AUTO => Ok(()),
        _ => Err(Errno::ENXIO),
    }
}
