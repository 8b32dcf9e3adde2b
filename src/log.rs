//! Minimal logging for the daemon: to stderr, or to syslog-style lines in
//! a file when running in the background. Quiet in-process.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// 0: silent (library use), 1: warnings, 2: info, 3: debug.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

fn emit(level: u8, tag: &str, msg: &str) {
    if LEVEL.load(Ordering::Relaxed) >= level {
        let _ = writeln!(
            std::io::stderr(),
            "ifnetd[{}]: {tag}{}",
            std::process::id(),
            escape(msg)
        );
    }
}

/// A message as one line: control characters (a newline in a client's
/// linkstr, say) are written as escapes, so no client can forge a line.
pub fn escape(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return msg.into();
    }
    msg.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\t' => "\\t".to_string(),
            '\r' => "\\r".to_string(),
            c if c.is_control() => format!("\\x{:02x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

pub fn error(msg: &str) {
    emit(1, "error: ", msg)
}

pub fn warn(msg: &str) {
    emit(1, "warning: ", msg)
}

pub fn info(msg: &str) {
    emit(2, "", msg)
}

pub fn debug(msg: &str) {
    emit(3, "debug: ", msg)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_cannot_make_a_line() {
        assert_eq!(escape("plain /tmp/bus"), "plain /tmp/bus");
        assert_eq!(
            escape("bus\n* * * * * root sh\r\x1b[2J\x7f"),
            "bus\\n* * * * * root sh\\r\\x1b[2J\\x7f"
        );
    }
}
