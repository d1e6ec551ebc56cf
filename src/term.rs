//! What hermetic writes to its standard streams, and how outside text is
//! shown there.
//!
//! Two concerns live here and nowhere else:
//!
//! * **Escaping.** Names and text that come from outside hermetic (archive
//!   entry names, file paths, ELF `SONAME`/`NEEDED` strings, recipe values,
//!   container output) can hold control characters that rewrite what a
//!   terminal shows: ESC sequences, a carriage return that overwrites the
//!   line, bidi overrides (U+202E) that reverse it. [`shown`] wraps any such
//!   value for display (`{}` of it is escaped); [`escape_output`] escapes a
//!   stream of lines (a build step's output) but keeps its tabs and
//!   newlines. `--json` output does not go through here: JSON escapes by
//!   itself, and a reader gets the exact bytes back.
//! * **Closed streams.** `println!`/`eprintln!` panic when the other end of
//!   a pipe is gone (`hermetic … | head`). Everything the library prints
//!   goes through [`stdout_line`]/[`stderr_line`] (or [`StderrLog`] for
//!   tracing, [`write_stderr`] for streamed output) instead: a broken pipe
//!   becomes [`Error::OutputClosed`], and [`closed`] resolves, which the
//!   binary's run guard ([`crate::app::run_guarded`]) turns into a clean
//!   end: hermetic's containers removed, exit 141 (128 + SIGPIPE, as a
//!   process killed by SIGPIPE would give), no panic.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::{Error, Result};

/// True for characters that must not reach a terminal as they are: C0
/// controls (tab and newline included: in a name they are as misleading as
/// any), DEL, C1 controls, and the invisible formatting characters that
/// reorder or hide text (bidi embeddings, overrides and isolates, the
/// Arabic letter mark, zero-width characters, line/paragraph separators,
/// the byte order mark).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

fn write_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` with every character [`needs_escape`] replaces by its escape
/// (`\x1b`, `\r`, `\u{202e}`): safe to show on one terminal line. Borrowed
/// when there was nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_except(s, |_| false)
}

/// [`escape`] for a stream of lines, such as a build step's output: tabs
/// and newlines are kept, everything else that could drive the terminal
/// (ESC, CR, backspace, BEL, bidi overrides…) is escaped.
pub fn escape_output(s: &str) -> Cow<'_, str> {
    escape_except(s, |c| c == '\n' || c == '\t')
}

fn escape_except(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) && !keep(c) {
            // Writing to a String cannot fail.
            let _ = write_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value whose `Display` is shown escaped ([`escape`]); see [`shown`].
#[derive(Debug, Clone, Copy)]
pub struct Shown<T>(pub T);

impl<T: fmt::Display> fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    if needs_escape(c) {
                        write_escaped(self.0, c)?;
                    } else {
                        self.0.write_char(c)?;
                    }
                }
                Ok(())
            }
        }
        write!(Escaping(f), "{}", self.0)
    }
}

/// Wraps a name or text from outside hermetic for display in a message or
/// report: `format!("{}", shown(path.display()))`, `shown(&entry_name)`.
pub fn shown<T: fmt::Display>(value: T) -> Shown<T> {
    Shown(value)
}

/// One of the standard streams hermetic writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// The first stream found closed: 0 none, 1 stdout, 2 stderr.
static CLOSED: AtomicU8 = AtomicU8::new(0);
static CLOSED_NOTIFY: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

fn mark_closed(stream: Stream) {
    let code = match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    };
    if CLOSED
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        // A stored permit: the run guard sees it even if it polls later.
        CLOSED_NOTIFY.notify_one();
    }
}

/// The stream found closed first, if any.
pub fn closed_stream() -> Option<Stream> {
    match CLOSED.load(Ordering::SeqCst) {
        1 => Some(Stream::Stdout),
        2 => Some(Stream::Stderr),
        _ => None,
    }
}

/// Resolves once a write found stdout or stderr closed (a broken pipe).
pub async fn closed() -> Stream {
    loop {
        if let Some(stream) = closed_stream() {
            return stream;
        }
        CLOSED_NOTIFY.notified().await;
    }
}

/// Maps a write error on `stream`: a broken pipe marks it closed and is
/// [`Error::OutputClosed`]; anything else is an I/O error naming it.
fn write_error(stream: Stream, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        mark_closed(stream);
        Error::OutputClosed { stream }
    } else {
        Error::Io(io::Error::new(
            e.kind(),
            format!("writing to {stream}: {e}"),
        ))
    }
}

/// Writes `bytes` to stdout (a result, a JSON document, an SBOM).
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| write_error(Stream::Stdout, e))
}

/// Writes one line of a result to stdout; what `println!` would, without
/// the panic. Use [`shown`] for outside values in it.
pub fn stdout_line(args: fmt::Arguments<'_>) -> Result<()> {
    write_stdout(format!("{args}\n").as_bytes())
}

/// Writes one line of a message to stderr; what `eprintln!` would, without
/// the panic.
pub fn stderr_line(args: fmt::Arguments<'_>) -> Result<()> {
    write_stderr(format!("{args}\n").as_bytes())
}

/// Writes bytes to stderr as they come (a build step's output under `-v`:
/// pass it through [`escape_output`] first).
pub fn write_stderr(bytes: &[u8]) -> Result<()> {
    let mut err = io::stderr().lock();
    err.write_all(bytes)
        .and_then(|()| err.flush())
        .map_err(|e| write_error(Stream::Stderr, e))
}

/// `println!` for results: escapes nothing by itself (wrap outside values
/// in [`shown`]) and returns [`Error::OutputClosed`] on a broken pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::term::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` for messages, returning [`Error::OutputClosed`] on a broken
/// pipe instead of panicking.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::term::stderr_line(format_args!($($arg)*))
    };
}

/// The writer tracing logs go through: stderr, where a broken pipe marks
/// the stream closed (so the run ends, see [`closed`]) and is then
/// swallowed, since there is nowhere left to report it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLog;

impl Write for StderrLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match io::stderr().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                mark_closed(Stream::Stderr);
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match io::stderr().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                mark_closed(Stream::Stderr);
                Ok(())
            }
            other => other,
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrLog {
    type Writer = StderrLog;

    fn make_writer(&'a self) -> Self::Writer {
        StderrLog
    }
}

/// How many items of a long list a message shows.
pub const LIST_SHOWN: usize = 8;

/// A list of items (files, libraries, report lines) for one message: all of
/// them when there are at most [`LIST_SHOWN`]; else the first few, the
/// count, and the file the whole list was written to (under the log
/// directory, named after `what`), so that one error stays a readable line
/// however many files it is about. `sep` joins the items shown.
pub fn capped_list(what: &str, items: &[String], sep: &str) -> String {
    if items.len() <= LIST_SHOWN {
        return items.join(sep);
    }
    let shown = items[..LIST_SHOWN].join(sep);
    let more = items.len() - LIST_SHOWN;
    let dir = crate::paths::log_dir();
    let file = dir.join(format!("{what}-{}.txt", std::process::id()));
    let written =
        fs_err::create_dir_all(&dir).and_then(|()| fs_err::write(&file, items.join("\n") + "\n"));
    match written {
        Ok(()) => format!(
            "{shown}{sep}… and {more} more ({} in all; full list: {})",
            items.len(),
            file.display()
        ),
        Err(_) => format!("{shown}{sep}… and {more} more ({} in all)", items.len()),
    }
}

/// A byte count for people: `64.00 GiB`.
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_list_shows_the_first_items_the_count_and_the_file() {
        let few: Vec<String> = (0..3).map(|i| format!("f{i}")).collect();
        assert_eq!(super::capped_list("t", &few, ", "), "f0, f1, f2");
        let many: Vec<String> = (0..5000).map(|i| format!("lib/file{i}.so")).collect();
        let text = super::capped_list("test-list", &many, ", ");
        assert!(text.len() < 400, "{text}");
        assert!(text.starts_with("lib/file0.so, lib/file1.so"), "{text}");
        assert!(
            text.contains("and 4992 more (5000 in all; full list: "),
            "{text}"
        );
        let path = text
            .rsplit("full list: ")
            .next()
            .unwrap()
            .trim_end_matches(')');
        let full = std::fs::read_to_string(path).unwrap();
        assert_eq!(full.lines().count(), 5000);
        std::fs::remove_file(path).unwrap();
    }

    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        let hostile = "a\x1b[2K\rverified: identical\u{7}\u{9b}31m\u{202e}txt.exe\nz\t";
        let shown = escape(hostile);
        assert_eq!(
            shown,
            "a\\x1b[2K\\rverified: identical\\x07\\u{9b}31m\\u{202e}txt.exe\\nz\\t"
        );
        assert!(!shown.chars().any(needs_escape));
        assert_eq!(format!("{}", super::shown(hostile)), shown);
        // Plain names stay borrowed, unicode stays readable.
        assert!(matches!(escape("lib/libfoo.so.1 é"), Cow::Borrowed(_)));
    }

    #[test]
    fn output_keeps_tabs_and_newlines() {
        assert_eq!(
            escape_output("ok\tdone\n\x1b[31mred\r\n"),
            "ok\tdone\n\\x1b[31mred\\r\n"
        );
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape("\x1b]0;title\x07").into_owned();
        assert_eq!(escape(&once), once);
    }
}
