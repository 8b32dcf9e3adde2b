//! Framing of the control protocol on a stream socket.
//!
//! Each message is a 4-byte big-endian length, then that many bytes: one
//! byte of protocol version followed by the postcard encoding of a
//! [`Request`] or a [`Response`]. The length is checked before anything is
//! allocated, so a hostile peer cannot make the daemon reserve memory.

use super::{Errno, Request, Response};
use serde::{Serialize, de::DeserializeOwned};
use std::io::{self, Read, Write};

/// Protocol version; a peer speaking another one is refused.
pub const VERSION: u8 = 1;
/// Largest request body the daemon accepts.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response body a client accepts (a thousand interfaces fit easily).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why a message could not be read.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed the stream cleanly before a new message.
    Eof,
    Io(io::Error),
    TooLong(usize),
    Version(u8),
    Decode,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Eof => write!(f, "connection closed"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::TooLong(n) => write!(f, "message of {n} bytes is too long"),
            WireError::Version(v) => {
                write!(f, "protocol version {v}, expected {VERSION}")
            }
            WireError::Decode => write!(f, "malformed message"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for Errno {
    fn from(e: WireError) -> Errno {
        match e {
            WireError::Io(e) => Errno::from_io(&e),
            WireError::TooLong(_) => Errno::EMSGSIZE,
            _ => Errno::EPROTO,
        }
    }
}

fn write_msg<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let mut buf = vec![0u8; 5];
    buf[4] = VERSION;
    let buf = postcard::to_extend(msg, buf).map_err(|e| io::Error::other(e.to_string()))?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| io::Error::other("message too long"))?;
    let mut buf = buf;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    w.write_all(&buf)
}

fn read_msg<T: DeserializeOwned>(r: &mut impl Read, max: usize) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(WireError::Eof),
            Ok(0) => return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(WireError::Decode);
    }
    if len > max {
        return Err(WireError::TooLong(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(WireError::Io)?;
    decode_body(&body)
}

/// Decode one message body (version byte + payload). Public for fuzzing.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    match body.split_first() {
        Some((&VERSION, rest)) => match postcard::take_from_bytes(rest) {
            Ok((msg, [])) => Ok(msg),
            _ => Err(WireError::Decode),
        },
        Some((&v, _)) => Err(WireError::Version(v)),
        None => Err(WireError::Decode),
    }
}

pub fn write_request(w: &mut impl Write, req: &Request) -> io::Result<()> {
    write_msg(w, req)
}

pub fn read_request(r: &mut impl Read) -> Result<Request, WireError> {
    read_msg(r, MAX_REQUEST)
}

pub fn write_response(w: &mut impl Write, resp: &Response) -> io::Result<()> {
    write_msg(w, resp)
}

pub fn read_response(r: &mut impl Read) -> Result<Response, WireError> {
    read_msg(r, MAX_RESPONSE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioctl::Reply;

    #[test]
    fn round_trip() {
        let req = Request::IfCreate { name: "lo1".into() };
        let mut buf = Vec::new();
        write_request(&mut buf, &req).unwrap();
        assert_eq!(read_request(&mut &buf[..]).unwrap(), req);
        let resp: Response = Err(Errno::EEXIST);
        buf.clear();
        write_response(&mut buf, &resp).unwrap();
        assert_eq!(read_response(&mut &buf[..]).unwrap(), resp);
        let ok: Response = Ok(Reply::Flags(0x8049));
        buf.clear();
        write_response(&mut buf, &ok).unwrap();
        assert_eq!(read_response(&mut &buf[..]).unwrap(), ok);
    }

    #[test]
    fn refuses_bad_frames() {
        let huge = (MAX_REQUEST as u32 + 1).to_be_bytes();
        assert!(matches!(
            read_request(&mut &huge[..]),
            Err(WireError::TooLong(_))
        ));
        let bad_version = [0, 0, 0, 2, 9, 0];
        assert!(matches!(
            read_request(&mut &bad_version[..]),
            Err(WireError::Version(9))
        ));
        let garbage = [0, 0, 0, 3, VERSION, 0xff, 0xff];
        assert!(matches!(
            read_request(&mut &garbage[..]),
            Err(WireError::Decode)
        ));
        let short = [0, 0, 0, 9, VERSION];
        assert!(matches!(
            read_request(&mut &short[..]),
            Err(WireError::Io(_))
        ));
        assert!(matches!(read_request(&mut &[][..]), Err(WireError::Eof)));
    }

    proptest::proptest! {
        /// The daemon's decoder takes any bytes without panicking.
        #[test]
        fn decoder_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_body::<Request>(&body);
            let mut framed = (body.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&body);
            let _ = read_request(&mut &framed[..]);
        }

        /// Valid requests with a flipped byte decode or fail, never panic.
        #[test]
        fn mutated_requests(name in "[a-z]{1,8}[0-9]{1,3}", pos in 0usize..64, bit in 0u8..8) {
            let mut buf = Vec::new();
            write_request(&mut buf, &Request::SetLinkStr { name, linkstr: Some("/tmp/bus".into()) }).unwrap();
            let i = 4 + pos % (buf.len() - 4);
            buf[i] ^= 1 << bit;
            let _ = read_request(&mut &buf[..]);
        }
    }
}
