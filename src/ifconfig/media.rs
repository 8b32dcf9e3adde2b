//! The ifmedia words ifconfig knows (net/if_media.h descriptions): each
//! media type's subtypes, options and modes, with their aliases. The first
//! word of a row is the canonical one, sent to the driver.

/// Subtypes every media type has.
const SHARED_SUBTYPES: &[&[&str]] = &[&["autoselect", "auto"], &["manual"], &["none"]];

const ETHERNET_SUBTYPES: &[&[&str]] = &[
    &["10baseT", "10baseT/UTP", "UTP", "10UTP"],
    &["10base2", "BNC", "10BNC"],
    &["10base5", "AUI", "10AUI"],
    &["100baseTX", "100TX"],
    &["100baseFX", "100FX"],
    &["100baseT4", "100T4"],
    &["100baseVG", "100VG"],
    &["100baseT2", "100T2"],
    &["1000baseSX", "1000SX"],
    &["10baseSTP", "STP", "10STP"],
    &["10baseFL", "FL", "10FL"],
    &["1000baseLX", "1000LX"],
    &["1000baseCX", "1000CX"],
    &["1000baseT", "1000T", "1000baseTX"],
    &["HomePNA1", "HPNA1"],
    &["10GbaseLR", "10GLR"],
    &["10GbaseSR", "10GSR"],
    &["10GbaseCX4", "10GCX4"],
    &["2500baseSX", "2500SX"],
    &["10GbaseT", "10GT"],
    &["2500baseT", "2500T"],
    &["5GbaseT", "5GT"],
];

const ETHERNET_OPTIONS: &[&[&str]] = &[
    &["full-duplex", "fdx"],
    &["half-duplex", "hdx"],
    &["flowcontrol", "flow"],
    &["rxpause"],
    &["txpause"],
    &["flag0"],
    &["flag1"],
    &["flag2"],
    &["loopback", "hw-loopback"],
];

/// The canonical word for `word` in `rows`.
fn lookup(rows: &[&[&'static str]], word: &str) -> Option<&'static str> {
    rows.iter()
        .find(|r| r.iter().any(|w| w.eq_ignore_ascii_case(word)))
        .map(|r| r[0])
}

/// A media subtype of `ty` ("Ethernet"), canonical.
pub fn subtype(ty: &str, word: &str) -> Option<&'static str> {
    lookup(SHARED_SUBTYPES, word).or_else(|| match ty {
        "Ethernet" => lookup(ETHERNET_SUBTYPES, word),
        _ => None,
    })
}

/// A media option of `ty`, canonical.
pub fn option(ty: &str, word: &str) -> Option<&'static str> {
    match ty {
        "Ethernet" => lookup(ETHERNET_OPTIONS, word),
        _ => None,
    }
}

/// A media mode of `ty`; Ethernet has none.
pub fn mode(_ty: &str, _word: &str) -> Option<&'static str> {
    None
}
