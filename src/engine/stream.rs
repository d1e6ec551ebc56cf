//! A build step's output as lines, in bounded memory.
//!
//! The engine hands exec output over in chunks whose boundaries fall
//! anywhere: mid-line and mid-UTF-8 character. [`LineSplitter`] buffers the
//! partial line of one stream (stdout and stderr each get their own) and
//! hands out whole lines only, so a line is never shown, logged or quoted in
//! two halves and a multi-byte character split by a chunk boundary is not
//! turned into two replacement characters. A line longer than
//! [`MAX_LINE`] is cut there with a marker, and the rest of it is drained
//! without being kept: one step printing a gigabyte without a newline costs
//! [`MAX_LINE`] bytes, not a gigabyte.
//!
//! [`LogSink`] writes the lines to the step log file: ANSI escape sequences
//! and other control characters removed (the file is read with `less` or
//! `cat`, not replayed on a terminal), and capped at [`LOG_LIMIT`] bytes,
//! after which one marker line says so and further output is dropped (but
//! still read from the engine, so the step does not block on a full pipe).

use std::borrow::Cow;
use std::io::Write;

/// Longest line kept, in bytes; longer lines are cut with [`CUT_MARKER`].
pub const MAX_LINE: usize = 64 * 1024;

/// What follows a line cut at [`MAX_LINE`] bytes.
pub const CUT_MARKER: &str = " […line cut at 65536 bytes]";

/// Most bytes written to one step log file before it is truncated.
pub const LOG_LIMIT: u64 = 64 * 1024 * 1024;

/// Splits one output stream into whole lines; see the module docs.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    partial: Vec<u8>,
    /// The current line was already cut and handed out: drop bytes up to
    /// its newline.
    skipping: bool,
}

/// One line of output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// The line ended with a newline (false only for the last, unterminated
    /// line of a stream, or a line cut at the limit).
    pub terminated: bool,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that cuts lines at `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Takes one chunk and returns the lines it completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|b| *b == b'\n');
            let (piece, rest, ends) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if self.skipping {
                if ends {
                    self.skipping = false;
                }
                continue;
            }
            let room = self.max_line - self.partial.len();
            if piece.len() > room {
                self.partial.extend_from_slice(&piece[..room]);
                lines.push(self.take_cut());
                self.skipping = !ends;
                continue;
            }
            self.partial.extend_from_slice(piece);
            if ends {
                lines.push(Line {
                    text: lossy(std::mem::take(&mut self.partial)),
                    terminated: true,
                });
            }
        }
        lines
    }

    /// The stream ended: the unterminated last line, if any.
    pub fn finish(&mut self) -> Option<Line> {
        self.skipping = false;
        if self.partial.is_empty() {
            return None;
        }
        Some(Line {
            text: lossy(std::mem::take(&mut self.partial)),
            terminated: false,
        })
    }

    /// The buffered `max_line` bytes as a cut line: cut back to a character
    /// boundary, so the cut does not leave half a character behind.
    fn take_cut(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.partial);
        let keep = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            // An incomplete character at the end (error_len None): drop it.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        bytes.truncate(keep);
        let mut text = lossy(bytes);
        text.push_str(CUT_MARKER);
        Line {
            text,
            terminated: false,
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `line` without ANSI escape sequences (CSI such as colours and cursor
/// moves, OSC such as window titles and hyperlinks, and two-byte ESC
/// sequences) and without other control characters except tab.
pub fn strip_escapes(line: &str) -> Cow<'_, str> {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte @..~.
                Some('[') => skip_csi(&mut chars),
                // OSC, DCS, SOS, PM, APC: up to BEL or ESC \.
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Two-byte sequences (ESC 7, ESC =, …), or a lone ESC.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' => skip_string(&mut chars),
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Skips a CSI sequence's parameters and intermediates through its final
/// byte (`@`..=`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            return;
        }
    }
}

/// Skips an OSC-like string through its terminator (BEL, ST or ESC `\`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' if chars.peek() == Some(&'\\') => {
                chars.next();
                return;
            }
            _ => {}
        }
    }
}

/// The step log file: escape-free lines, at most `limit` bytes.
#[derive(Debug)]
pub struct LogSink<W> {
    out: W,
    written: u64,
    limit: u64,
    truncated: bool,
}

impl<W: Write> LogSink<W> {
    /// A log that has `already` bytes in it (appending to an existing
    /// file) and may grow to `limit`.
    pub fn new(out: W, already: u64, limit: u64) -> Self {
        LogSink {
            out,
            written: already,
            limit,
            truncated: already >= limit,
        }
    }

    /// Writes one line (a newline is added). Write errors are ignored: a
    /// full disk must not fail the build over its log; the marker line
    /// (or its absence) and the step's exit code still tell what happened.
    pub fn line(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        let clean = strip_escapes(line);
        let len = clean.len() as u64 + 1;
        if self.written + len > self.limit {
            self.truncated = true;
            let _ = writeln!(self.out, "[log truncated at {} bytes]", self.written);
            let _ = self.out.flush();
            return;
        }
        self.written += len;
        let _ = self.out.write_all(clean.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    /// True once the limit was reached.
    #[cfg(test)]
    fn truncated(&self) -> bool {
        self.truncated
    }

    /// The underlying writer.
    #[cfg(test)]
    fn get_ref(&self) -> &W {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<Line>) -> Vec<String> {
        lines.into_iter().map(|l| l.text).collect()
    }

    /// Feeds `input` cut at every `step` bytes; returns all lines.
    fn split_in_chunks(input: &[u8], step: usize, max: usize) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            out.extend(texts(s.push(chunk)));
        }
        out.extend(s.finish().map(|l| l.text));
        out
    }

    #[test]
    fn lines_are_whole_whatever_the_chunk_boundaries() {
        // Multi-byte characters of 2, 3 and 4 bytes, so that some chunk
        // size cuts each of them.
        let input = "première ligne\nzweite Zeile: ü€😀\n\nlast, unterminated: 😀€".as_bytes();
        let expected = vec![
            "première ligne".to_string(),
            "zweite Zeile: ü€😀".into(),
            String::new(),
            "last, unterminated: 😀€".into(),
        ];
        for step in 1..=input.len() {
            assert_eq!(
                split_in_chunks(input, step, MAX_LINE),
                expected,
                "chunks of {step}"
            );
        }
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker_and_the_rest_dropped() {
        // 10 bytes allowed; the long line's cut falls inside a 4-byte character.
        let input = "short\n123456789😀 and much more text\nnext\n".as_bytes();
        for step in 1..=input.len() {
            let lines = split_in_chunks(input, step, 10);
            assert_eq!(
                lines,
                vec![
                    "short".to_string(),
                    format!("123456789{CUT_MARKER}"),
                    "next".into()
                ],
                "chunks of {step}"
            );
        }
    }

    #[test]
    fn a_huge_line_without_newline_costs_bounded_memory() {
        let mut s = LineSplitter::new(MAX_LINE);
        let chunk = vec![b'x'; 1 << 20];
        let mut lines = Vec::new();
        for _ in 0..64 {
            lines.extend(s.push(&chunk));
            assert!(s.partial.capacity() <= 2 * MAX_LINE, "buffer grew");
        }
        lines.extend(s.finish());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text.len(), MAX_LINE + CUT_MARKER.len());
    }

    #[test]
    fn escapes_are_stripped_for_the_log() {
        let line = "\u{1b}[1;31merror\u{1b}[0m: \u{1b}]0;title\u{7}x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\\r\tdone\u{9b}2K";
        assert_eq!(strip_escapes(line), "error: xlink\tdone");
        assert!(matches!(strip_escapes("plain\ttext"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_log_is_capped_with_one_marker_line() {
        let mut log = LogSink::new(Vec::new(), 0, 100);
        for i in 0..100 {
            log.line(&format!("\u{1b}[32mline {i}\u{1b}[0m"));
        }
        assert!(log.truncated());
        let text = String::from_utf8(log.get_ref().clone()).unwrap();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"line 0"));
        assert_eq!(lines.last(), Some(&"[log truncated at 94 bytes]"), "{text}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("[log")).count(), 1);
        assert!(text.len() <= 100 + "[log truncated at 94 bytes]\n".len());
    }
}
