//! Deterministic archives: every determinism rule lives here.
//!
//! Data flow: a bundle directory on the host is walked ([`write_tree`]) into a
//! sorted list of `(archive path, source path)` entries, which
//! [`write_entries`] streams through a tar writer, an optional gzip encoder and
//! two hashing adaptors (one on the uncompressed tar stream, one on the bytes
//! that reach the output), so an OCI layer gets both its `diff_id` and its
//! digest from one pass and no bundle is ever held in memory.
//! [`write_archive_atomically`] puts the result at its final path only once it
//! is complete. In the other direction, [`unpack_safe`] unpacks a tar stream
//! that came out of a container, treating it as hostile.
//!
//! # Determinism rules (the only place they are written down)
//!
//! * **Format**: GNU tar (the tar crate's GNU headers). Paths longer than 100
//!   bytes and long symlink targets use GNU `././@LongLink` records, which GNU
//!   tar, bsdtar, busybox tar and Python's `tarfile` all read. No PAX records
//!   are written, so nothing like `atime`/`ctime`/xattrs can sneak in.
//! * **Order**: entries are sorted by the bytes of their archive path (not by
//!   walk order: `a-b` sorts before `a/b`). Directories are entries too, the
//!   prefix directory itself first.
//! * **Timestamps**: every entry's mtime is set to `SOURCE_DATE_EPOCH`, not
//!   clamped: a file that happens to be older than the epoch would otherwise
//!   leak the time it was built at.
//! * **Owners**: uid/gid 0, empty user and group names.
//! * **Modes**: directories 0755; regular files 0644, or 0755 when any execute
//!   bit is set; symlinks 0777. setuid/setgid/sticky never survive.
//! * **Kinds**: regular files, directories and symlinks only. Hard links are
//!   stored as independent regular files (so the archive does not depend on
//!   inode numbers). Devices, FIFOs and sockets are an error naming the file.
//!   Symlink targets are stored verbatim, but absolute targets and targets that
//!   leave the tree (checked lexically) are an error.
//! * **Gzip**: flate2 at level 6, header with no file name, mtime 0 and OS byte
//!   255 ("unknown"). The compressed bytes depend on flate2's backend
//!   (zlib-rs, about twice as fast as miniz_oxide here at 2% larger output),
//!   which `Cargo.lock` pins along with hermetic's version.
//! * **Zstandard** (opt-in, `[archive] compression = "zstd"`): libzstd through
//!   the `zstd` crate, single-threaded (multi-threaded output depends on the
//!   worker count), at the recipe's level (default 10), with a content
//!   checksum and no dictionary. The bytes depend on libzstd's version, which
//!   `Cargo.lock` pins through `zstd-sys`.
//!
//! # Image filesystem layers (builder and base images)
//!
//! A whole root filesystem cannot follow the bundle rules (setuid `su`,
//! `/hermetic` owned by uid 1000, `/dev/null` are part of what the image
//! is), so [`FsLayerWriter`] keeps what the filesystem means and drops what
//! only says when and where it was made:
//!
//! * **Order** as above: sorted by the bytes of the path, no root entry.
//! * **Timestamps** clamped to the epoch (`min(mtime, epoch)`): files made
//!   during an image build carry the build's time, files from the rootfs
//!   keep the fixed epoch mmdebstrap gave them.
//! * **Owners** numeric uid/gid as found, empty user and group names.
//! * **Modes** as found (permission, setuid, setgid and sticky bits).
//! * **Kinds** directories, regular files, symlinks, character and block
//!   devices, FIFOs. Hard links are regular files (as above).
//! * **No PAX records**: xattrs, atime/ctime and sub-second times of the
//!   engine's layers never reach the output.
//! * **Uncompressed**: the layer's digest is its `diff_id`, and an engine
//!   loads it without a compression library's version mattering.
//!
//! Readers never trust a file name: [`open_archive`] picks the decoder from
//! the first bytes (gzip, zstd or plain tar). Nor do they trust the bytes:
//! every archive is read through one [`ArchiveReader`], whose
//! [`finish`](ArchiveReader::finish) reads to the end of the compressed
//! stream, so that the gzip CRC-32 and size or the zstd checksum are
//! checked, and refuses anything after it ([`unpack_archive`] does both).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Errors writing or reading archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An I/O error; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A file kind that cannot go into a bundle (device, FIFO, socket).
    #[error(
        "unsupported file type ({kind}) at {}: bundles may only hold regular files, directories and symlinks",
        path.display()
    )]
    UnsupportedFileType {
        /// The file.
        path: PathBuf,
        /// Its kind, e.g. `socket`.
        kind: &'static str,
    },
    /// A symlink whose target is absolute, so it would not survive relocation.
    #[error("symlink {} has an absolute target `{}`: bundles must be relocatable", path.display(), target.display())]
    AbsoluteSymlink {
        /// The symlink.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A symlink whose target leaves the tree being archived.
    #[error("symlink {} points outside the tree: `{}`", path.display(), target.display())]
    EscapingSymlink {
        /// The symlink.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A file name that is not UTF-8 (archive paths are UTF-8).
    #[error("path is not valid UTF-8: {}", path.display())]
    NonUtf8Path {
        /// The path, as the file system has it.
        path: PathBuf,
    },
    /// The archive prefix is not a plain relative path.
    #[error("invalid archive prefix `{prefix}`: it must be a relative path without `..`")]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// An archive path given to [`write_entries`] is not a plain relative path.
    #[error(
        "invalid archive path `{path}`: it must be a relative path without `.`, `..` or empty components"
    )]
    InvalidEntryPath {
        /// The path given.
        path: String,
    },
    /// [`write_entries`] was given entries out of order or twice.
    #[error("archive entries must be sorted and unique: `{path}` comes after `{previous}`")]
    UnsortedEntries {
        /// The entry out of place.
        path: String,
        /// The entry before it.
        previous: String,
    },
    /// A file changed size while it was being archived.
    #[error("{} changed while it was being archived (expected {expected} bytes)", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Its size when archiving began.
        expected: u64,
    },

    /// A hostile or unsupported entry in a tar stream being unpacked.
    #[error("refusing tar entry `{}`: {reason}", crate::term::shown(entry))]
    UnsafeEntry {
        /// The entry's path as the tar stream has it.
        entry: String,
        /// Why it is refused.
        reason: UnsafeReason,
    },
    /// The tar stream being unpacked is larger than allowed.
    #[error(
        "unpacking stopped at entry `{}`: the files unpacked so far exceed the unpack limit of \
         {} ({limit} bytes); set {UNPACK_LIMIT_ENV} (e.g. {UNPACK_LIMIT_ENV}=128G) to raise it",
        crate::term::shown(entry),
        crate::term::bytes(*limit)
    )]
    SizeLimit {
        /// The entry at which the limit was passed.
        entry: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The tar stream being unpacked needs more room than the destination's
    /// file system has free.
    #[error(
        "unpacking into {} stopped at entry `{}`: the files unpacked so far ({} bytes) exceed \
         the {} free there; free some space, or point TMPDIR at a larger file system",
        dest.display(),
        crate::term::shown(entry),
        needed,
        crate::term::bytes(*free)
    )]
    NoSpace {
        /// The destination directory.
        dest: PathBuf,
        /// The entry at which the room ran out.
        entry: String,
        /// Bytes unpacked so far, with that entry.
        needed: u64,
        /// Bytes free on the destination's file system.
        free: u64,
    },
    /// `HERMETIC_UNPACK_LIMIT` does not parse.
    #[error(
        "invalid {UNPACK_LIMIT_ENV} `{value}`: expected a size in bytes, optionally with a \
         K, M, G or T suffix (powers of 1024), e.g. 128G"
    )]
    InvalidUnpackLimit {
        /// The value as set.
        value: String,
    },
    /// An archive whose bytes could not be read or decoded (a corrupt
    /// deflate stream, a bad gzip CRC-32 or size, a bad zstd checksum, a
    /// truncated stream).
    #[error("cannot read archive {} ({format}): {source}", path.display())]
    Decode {
        /// The archive.
        path: PathBuf,
        /// The compression its first bytes announced.
        format: StreamFormat,
        /// The decoder's error.
        source: io::Error,
    },
    /// An archive that decoded but is not intact (data after the end of the
    /// tar stream or of the compressed stream, no tar data at all).
    #[error("archive {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The destination of [`unpack_safe`] already exists and is not empty.
    #[error("unpack destination {} is not empty", path.display())]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },

    /// `SOURCE_DATE_EPOCH` is set but is not a non-negative integer.
    #[error(
        "invalid SOURCE_DATE_EPOCH `{value}`: expected a non-negative integer number of seconds"
    )]
    InvalidSourceDateEpoch {
        /// The value as set.
        value: String,
    },
    /// None of the three sources of the epoch gave a value.
    #[error(
        "no SOURCE_DATE_EPOCH for {}: set the SOURCE_DATE_EPOCH environment variable, build from a git checkout with at least one commit, or set `source_date_epoch` in the recipe",
        dir.display()
    )]
    NoSourceDateEpoch {
        /// The directory the epoch was wanted for.
        dir: PathBuf,
    },

    /// A name that `sha256sum -c` could not read back unambiguously.
    #[error(
        "cannot list `{name}` in SHA256SUMS: names must be non-empty and free of newlines and backslashes"
    )]
    InvalidChecksumName {
        /// The name.
        name: String,
    },
    /// A digest that is not 64 lowercase hex digits.
    #[error("invalid sha256 `{hex}` for `{name}`: expected 64 lowercase hex digits")]
    InvalidChecksum {
        /// The file it is for.
        name: String,
        /// The digest given.
        hex: String,
    },
    /// A line of a SHA256SUMS file that does not parse.
    #[error("{}:{line}: malformed checksum line: {reason}", path.display())]
    MalformedSha256Sums {
        /// The SHA256SUMS file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
}

impl ArchiveError {
    /// An I/O error as the tar crate hands it back: when it came from an
    /// [`ArchiveReader`] (a decoding error naming the archive), that error
    /// itself, else [`ArchiveError::Io`].
    pub fn from_io(e: io::Error) -> ArchiveError {
        if !e.get_ref().is_some_and(|inner| inner.is::<ArchiveError>()) {
            return ArchiveError::Io(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<ArchiveError>()) {
            Some(Ok(archive)) => *archive,
            Some(Err(other)) => ArchiveError::Io(io::Error::new(kind, other)),
            None => ArchiveError::Io(kind.into()),
        }
    }

    /// Whether the archive itself is damaged (as opposed to unsafe or unreadable).
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            ArchiveError::Decode { .. } | ArchiveError::Corrupt { .. }
        )
    }
}

/// Why [`unpack_safe`] refused an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeReason {
    /// An absolute path.
    #[error("absolute path")]
    AbsolutePath,
    /// A `..` component.
    #[error("path contains a `..` component")]
    ParentDir,
    /// A path that is not UTF-8.
    #[error("path is not valid UTF-8")]
    NonUtf8,
    /// A link whose target leaves the destination.
    #[error("link target `{target}` escapes the destination")]
    LinkEscapes {
        /// The link target.
        target: String,
    },
    /// A hard link to anything but a regular file unpacked earlier.
    #[error("hard link target `{target}` is not a regular file unpacked earlier")]
    BadHardLink {
        /// The link target.
        target: String,
    },
    /// An entry whose path runs through a symlink unpacked earlier.
    #[error("it would be written through the symlink `{symlink}`")]
    ThroughSymlink {
        /// That symlink.
        symlink: String,
    },
    /// A device, FIFO or other special entry.
    #[error("{kind} entries are not allowed")]
    SpecialFile {
        /// The entry's kind.
        kind: &'static str,
    },
    /// An entry at a path that an entry unpacked earlier holds, in a way
    /// that cannot be merged.
    #[error("it conflicts with an existing {existing} at the same path")]
    Conflict {
        /// What is already there.
        existing: &'static str,
    },
}

/// Which compression to apply on top of the tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, level 6, no name, mtime 0.
    Gzip,
    /// Zstandard at this level (1..=19), single-threaded, with a checksum.
    Zstd {
        /// The compression level.
        level: i32,
    },
    /// A plain tar stream.
    None,
}

/// The zstd level used when a recipe asks for zstd without a level: about
/// gzip's speed, about 13% smaller (measured on a 45 MB bundle).
pub const ZSTD_DEFAULT_LEVEL: i32 = 10;
/// The zstd levels a recipe may ask for (20..=22 need far more memory).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

impl Compression {
    /// File name extension of an archive with this compression.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "tar.gz",
            Compression::Zstd { .. } => "tar.zst",
            Compression::None => "tar",
        }
    }
}

/// The first four bytes of a Zstandard frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Extensions of the archives hermetic writes, longest first.
const ARCHIVE_EXTENSIONS: &[&str] = &[".tar.gz", ".tar.zst", ".tgz", ".tar"];

/// `name` without its archive extension, or `None` when it has none.
pub fn archive_stem(name: &str) -> Option<&str> {
    ARCHIVE_EXTENSIONS
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
}

/// Opens an archive for reading, decompressing by what its first bytes are
/// (gzip, zstd, or else a plain tar), whatever its name says. Read the tar
/// stream from it, then call [`ArchiveReader::finish`]: only that proves the
/// archive intact (see [`ArchiveReader`]).
pub fn open_archive(path: &Path) -> Result<ArchiveReader, ArchiveError> {
    ArchiveReader::open(path)
}

/// Unpacks the archive at `path` into `dest` with [`unpack_safe`]'s rules,
/// then checks that the archive was intact ([`ArchiveReader::finish`]). On
/// error `dest` may hold a partial tree, which the caller removes.
pub fn unpack_archive(
    path: &Path,
    dest: &Path,
    max_bytes: u64,
) -> Result<UnpackSummary, ArchiveError> {
    let mut reader = open_archive(path)?;
    let summary = unpack_safe(&mut reader, dest, max_bytes).map_err(|e| match e {
        // The tar reader's words for a stream that stops inside an entry
        // ("unexpected EOF during skip") name no archive.
        ArchiveError::Io(e) if reader.cut_short() => ArchiveError::Corrupt {
            path: path.to_owned(),
            reason: format!("truncated: {e}"),
        },
        e => e,
    })?;
    reader.finish()?;
    Ok(summary)
}

/// The compression of an archive, as its first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// gzip (`1f 8b`).
    Gzip,
    /// Zstandard ([`ZSTD_MAGIC`]).
    Zstd,
    /// Neither: read as a plain tar stream.
    Tar,
}

impl std::fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamFormat::Gzip => "gzip",
            StreamFormat::Zstd => "zstd",
            StreamFormat::Tar => "tar",
        })
    }
}

enum Decoder {
    /// One gzip member; `bufread` so that the decoder consumes exactly the
    /// member's bytes and whatever follows stays in the buffer to be found.
    Gzip(Box<flate2::bufread::GzDecoder<io::BufReader<fs_err::File>>>),
    /// One zstd frame (`single_frame`), for the same reason.
    Zstd(zstd::stream::read::Decoder<'static, io::BufReader<fs_err::File>>),
    Tar(io::BufReader<fs_err::File>),
}

/// The one reader of every archive hermetic reads (unpack, ELF scan, SBOM,
/// image, verify, upload): the decompressed tar stream of the file at
/// [`path`](Self::path).
///
/// A tar reader stops at the end-of-archive blocks, so it never reaches the
/// end of the compressed stream, which is where gzip keeps its CRC-32 and
/// size and zstd its checksum. [`finish`](Self::finish) reads on to the end:
/// the rest of the tar stream must be zeros (the end-of-archive blocks and
/// padding, nothing hidden after them), the decoder then verifies the
/// checksum, and no byte may follow the compressed stream (one gzip member,
/// one zstd frame: hermetic writes nothing else). A zstd frame without a
/// checksum (which hermetic never writes) is accepted; a wrong one is not.
///
/// Decoding errors while reading are reported naming the archive.
pub struct ArchiveReader {
    path: PathBuf,
    format: StreamFormat,
    decoder: Decoder,
    /// Bytes of the tar stream read so far.
    tar_bytes: u64,
    /// Where the tar stream's blocks are, to tell its end from a cut.
    blocks: TarBlocks,
    /// A read found the end of the data.
    at_eof: bool,
}

impl ArchiveReader {
    /// Opens `path`, picking the decoder from its first bytes.
    pub fn open(path: &Path) -> Result<ArchiveReader, ArchiveError> {
        let mut file = io::BufReader::with_capacity(BUF_SIZE, fs_err::File::open(path)?);
        let magic = {
            use io::BufRead;
            let head = file.fill_buf()?;
            head[..head.len().min(4)].to_vec()
        };
        let (format, decoder) = if magic.starts_with(&[0x1f, 0x8b]) {
            (
                StreamFormat::Gzip,
                Decoder::Gzip(Box::new(flate2::bufread::GzDecoder::new(file))),
            )
        } else if magic == ZSTD_MAGIC {
            let zst = zstd::stream::read::Decoder::with_buffer(file)
                .map_err(|e| decode_error(path, StreamFormat::Zstd, e))?;
            (StreamFormat::Zstd, Decoder::Zstd(zst.single_frame()))
        } else {
            (StreamFormat::Tar, Decoder::Tar(file))
        };
        Ok(ArchiveReader {
            path: path.to_owned(),
            format,
            decoder,
            tar_bytes: 0,
            blocks: TarBlocks::default(),
            at_eof: false,
        })
    }

    /// The archive being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its compression.
    pub fn format(&self) -> StreamFormat {
        self.format
    }

    /// True when the data ran out before the tar stream's end-of-archive
    /// marker: whatever error the tar reader gave, the archive is cut.
    pub fn cut_short(&self) -> bool {
        self.at_eof && !self.blocks.ended()
    }

    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.decoder {
            Decoder::Gzip(d) => d.read(buf)?,
            Decoder::Zstd(d) => d.read(buf)?,
            Decoder::Tar(d) => d.read(buf)?,
        };
        self.blocks.feed(&buf[..n]);
        self.at_eof |= n == 0 && !buf.is_empty();
        self.tar_bytes += n as u64;
        Ok(n)
    }

    /// Reads the archive to its very end and checks it is intact: call it
    /// once the tar stream has been read. Errors name the archive.
    pub fn finish(mut self) -> Result<(), ArchiveError> {
        let corrupt = |path: &Path, reason: String| ArchiveError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        // The rest of the tar stream: end-of-archive blocks and padding.
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            let at = self.tar_bytes;
            let n = match self.read_raw(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(decode_error(&self.path, self.format, e)),
            };
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(corrupt(
                    &self.path,
                    format!(
                        "data after the tar end-of-archive marker (at byte {} of the tar stream)",
                        at + i as u64
                    ),
                ));
            }
        }
        if self.tar_bytes == 0 {
            return Err(corrupt(&self.path, "it is empty, not a tar archive".into()));
        }
        // A tar reader takes the end of the data for the end of the archive,
        // so a plain tar cut at a block boundary would pass for a whole one.
        if !self.blocks.ended() {
            return Err(corrupt(
                &self.path,
                format!(
                    "truncated: the tar stream stops after {} bytes, without the two zero \
                     blocks that end an archive",
                    self.tar_bytes
                ),
            ));
        }
        // Nothing after the compressed stream.
        let rest = match &mut self.decoder {
            Decoder::Gzip(d) => Some(d.get_mut()),
            Decoder::Zstd(d) => Some(d.get_mut()),
            Decoder::Tar(_) => None,
        };
        if let Some(rest) = rest {
            use io::BufRead;
            let rest = rest.fill_buf()?;
            if !rest.is_empty() {
                let what = match self.format {
                    StreamFormat::Gzip if rest.starts_with(&[0x1f, 0x8b]) => {
                        "a second gzip member after the first (hermetic reads one)"
                    }
                    StreamFormat::Zstd => "bytes after the zstd frame",
                    _ => "bytes after the end of the gzip stream",
                };
                return Err(corrupt(&self.path, format!("trailing data: {what}")));
            }
        }
        Ok(())
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_raw(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                return e;
            }
            io::Error::new(e.kind(), decode_error(&self.path, self.format, e))
        })
    }
}

impl std::fmt::Debug for ArchiveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tar_bytes", &self.tar_bytes)
            .finish()
    }
}

/// Follows a tar stream's 512-byte blocks as it is read, whoever reads it
/// (the tar crate, or a plain copy), to see whether it reaches the
/// end-of-archive marker: two all-zero header blocks. Entry sizes come from
/// each header (octal or GNU base-256) and from a PAX `size=` record. A GNU
/// sparse entry, whose extension blocks it does not follow, makes it stop
/// judging (and [`ended`](Self::ended) true): hermetic refuses those entries
/// when unpacking anyway.
#[derive(Debug, Default)]
struct TarBlocks {
    /// Offset in the tar stream of the next byte fed.
    at: u64,
    /// Offset of the next header block.
    next_header: u64,
    /// The header block being gathered.
    header: Vec<u8>,
    /// The data of a PAX extended header being gathered, and where it ends.
    pax: Option<(Vec<u8>, u64)>,
    /// A size a PAX record gave for the next entry.
    pax_size: Option<u64>,
    /// Consecutive zero header blocks just seen.
    zero_blocks: u8,
    /// The marker was seen, or the stream cannot be followed.
    done: bool,
}

/// PAX extended headers larger than this are not gathered (real ones hold
/// a few names and times).
const PAX_LIMIT: u64 = 1 << 20;

impl TarBlocks {
    fn ended(&self) -> bool {
        self.done
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.done {
            if self.at < self.next_header {
                let skip = (self.next_header - self.at).min(data.len() as u64) as usize;
                if let Some((pax, end)) = &mut self.pax {
                    let keep = end.saturating_sub(self.at).min(skip as u64) as usize;
                    pax.extend_from_slice(&data[..keep]);
                }
                self.at += skip as u64;
                data = &data[skip..];
                continue;
            }
            if let Some((pax, _)) = self.pax.take() {
                self.pax_size = pax_size(&pax);
            }
            let take = (512 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            self.at += take as u64;
            data = &data[take..];
            if self.header.len() == 512 {
                let header = std::mem::take(&mut self.header);
                self.header_block(&header);
            }
        }
    }

    fn header_block(&mut self, h: &[u8]) {
        self.next_header += 512;
        if h.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            self.done = self.zero_blocks >= 2;
            return;
        }
        self.zero_blocks = 0;
        let typeflag = h[156];
        let Some(size) = self.pax_size.take().or_else(|| header_size(&h[124..136])) else {
            // A size no reader could use: the tar reader reports it.
            self.done = true;
            return;
        };
        if typeflag == b'S' {
            self.done = true;
            return;
        }
        let start = self.next_header;
        self.next_header = start.saturating_add(size.div_ceil(512).saturating_mul(512));
        if typeflag == b'x' && size <= PAX_LIMIT {
            self.pax = Some((Vec::new(), start + size));
        }
    }
}

/// The size field of a tar header: octal digits, or GNU base-256.
fn header_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |n, &b| {
                n.checked_mul(256).map(|n| n | u64::from(b))
            });
    }
    let digits = std::str::from_utf8(field).ok()?;
    let digits = digits.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `size` a PAX extended header's records give (`<len> size=<n>\n`).
fn pax_size(data: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .filter_map(|record| record.split_once(' ').map(|(_, kv)| kv))
        .filter_map(|kv| kv.strip_prefix("size="))
        .next_back()
        .and_then(|n| n.parse().ok())
}

fn decode_error(path: &Path, format: StreamFormat, source: io::Error) -> ArchiveError {
    ArchiveError::Decode {
        path: path.to_owned(),
        format,
        source,
    }
}

/// How to write an archive. Everything else is fixed by the rules above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// The mtime of every entry (seconds since the Unix epoch).
    pub source_date_epoch: u64,
    /// Compression applied to the tar stream.
    pub compression: Compression,
}

/// What was written: the hashes an OCI layer or a SHA256SUMS line needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeSummary {
    /// SHA-256 (hex) of the bytes written to the output (compressed if gzip).
    pub sha256: String,
    /// Number of bytes written to the output.
    pub size: u64,
    /// SHA-256 (hex) of the uncompressed tar stream (an OCI layer's diff_id).
    pub tar_sha256: String,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Number of regular files (including hard links stored as files).
    pub files: u64,
}

/// What [`unpack_safe`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnpackSummary {
    /// Regular files created.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Total size of the regular files' contents.
    pub bytes: u64,
}

/// One entry to archive: its path inside the archive and where its bytes
/// come from on the host. The kind (file, directory, symlink) is read from
/// the source without following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The path inside the archive, `/`-separated and relative.
    pub archive_path: String,
    /// The file, directory or symlink on the host.
    pub source: PathBuf,
}

/// Write trait adaptor: hashes and counts every byte that passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `remaining` bytes from a file, failing if it is shorter,
/// so a file that shrinks while being archived cannot corrupt the tar; and
/// stops at a signal ([`crate::cancel`]), the copy of a big file being
/// most of the time an archive takes.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        crate::cancel::check()?;
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Buffer size for file reads and output writes: large enough that syscalls
/// do not dominate, small enough to be irrelevant for memory.
const BUF_SIZE: usize = 256 * 1024;

/// gzip level used for every archive (changing it changes every digest).
const GZIP_LEVEL: u32 = 6;

/// Archive the tree at `root` with every entry under `prefix/` (no prefix
/// directory when `prefix` is empty). See the module docs for the rules.
pub fn write_tree<W: Write>(
    root: &Path,
    prefix: &str,
    out: W,
    opts: &ArchiveOptions,
) -> Result<TreeSummary, ArchiveError> {
    let entries = collect_tree(root, prefix)?;
    write_entries(&entries, out, opts)
}

/// Archive an explicit list of entries, which must be sorted by the bytes of
/// their archive path and unique (so that a caller building an OCI layer
/// from part of a tree gets exactly the order [`write_tree`] would use).
/// Missing parent directories are not added. Symlink targets must be
/// relative and must not leave the archive's root.
pub fn write_entries<W: Write>(
    entries: &[ArchiveEntry],
    out: W,
    opts: &ArchiveOptions,
) -> Result<TreeSummary, ArchiveError> {
    for pair in entries.windows(2) {
        if pair[0].archive_path.as_bytes() >= pair[1].archive_path.as_bytes() {
            return Err(ArchiveError::UnsortedEntries {
                path: pair[1].archive_path.clone(),
                previous: pair[0].archive_path.clone(),
            });
        }
    }
    for entry in entries {
        if !is_plain_relative(&entry.archive_path) {
            return Err(ArchiveError::InvalidEntryPath {
                path: entry.archive_path.clone(),
            });
        }
    }

    compressed(out, opts.compression, |tar| {
        Ok(write_tar(entries, tar, opts.source_date_epoch)?.1)
    })
}

/// Compresses an existing tar stream (e.g. a rootfs tarball that is not
/// ours to re-tar) with the same encoder settings as [`write_entries`].
/// `files` in the summary is 0: the stream is not parsed.
pub fn compress_tar<R: Read, W: Write>(
    mut input: R,
    out: W,
    compression: Compression,
) -> Result<TreeSummary, ArchiveError> {
    compressed(out, compression, |tar| {
        copy_buffered(&mut input, tar)?;
        Ok(0)
    })
}

/// [`compress_tar`] of the file `src` into `dest`, atomically.
pub fn compress_tar_file_atomically(
    src: &Path,
    dest: &Path,
    compression: Compression,
) -> Result<TreeSummary, ArchiveError> {
    let input = fs_err::File::open(src)?;
    write_atomically(dest, |file| compress_tar(input, file, compression))
}

/// Runs `body` with a writer for the uncompressed tar stream, which goes
/// through `compression` into `out`, hashing both sides on the way. `body`
/// returns the number of files it wrote.
fn compressed<W: Write>(
    out: W,
    compression: Compression,
    body: impl FnOnce(&mut dyn Write) -> Result<u64, ArchiveError>,
) -> Result<TreeSummary, ArchiveError> {
    let mut out = HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, out));
    // (writer of the compressed side, tar sha256, tar size, files)
    let (out, tar_sha256, tar_size, files) = match compression {
        Compression::None => {
            // One stream: hash it once.
            let files = body(&mut out)?;
            let (mut buf, sha256, size) = out.finish();
            buf.flush()?;
            return Ok(TreeSummary {
                tar_sha256: sha256.clone(),
                tar_size: size,
                sha256,
                size,
                files,
            });
        }
        Compression::Zstd { level } => {
            if !ZSTD_LEVELS.contains(&level) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("zstd level {level} is outside {ZSTD_LEVELS:?}"),
                )
                .into());
            }
            let mut zst = zstd::stream::write::Encoder::new(out, level)?;
            zst.include_checksum(true)?;
            zst.include_contentsize(false)?;
            zst.include_dictid(false)?;
            let mut tar = HashingWriter::new(zst);
            let files = body(&mut tar)?;
            let (zst, tar_sha256, tar_size) = tar.finish();
            (zst.finish()?, tar_sha256, tar_size, files)
        }
        Compression::Gzip => {
            let gz = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(out, flate2::Compression::new(GZIP_LEVEL));
            let mut tar = HashingWriter::new(gz);
            let files = body(&mut tar)?;
            let (gz, tar_sha256, tar_size) = tar.finish();
            (gz.finish()?, tar_sha256, tar_size, files)
        }
    };
    let (mut buf, sha256, size) = out.finish();
    buf.flush()?;
    Ok(TreeSummary {
        sha256,
        size,
        tar_sha256,
        tar_size,
        files,
    })
}

/// Stream the entries as a tar into `out`; returns `out` and the file count.
fn write_tar<W: Write>(
    entries: &[ArchiveEntry],
    out: W,
    epoch: u64,
) -> Result<(W, u64), ArchiveError> {
    let mut builder = tar::Builder::new(out);
    let mut files = 0;
    for entry in entries {
        crate::cancel::check()?;
        let meta = fs_err::symlink_metadata(&entry.source)?;
        let ft = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_mtime(epoch);
        header.set_uid(0);
        header.set_gid(0);
        // new_gnu() leaves the names empty already; set them anyway so the
        // rule is visible here rather than implied by a default.
        header.set_username("")?;
        header.set_groupname("")?;
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, &entry.archive_path, io::empty())?;
        } else if ft.is_symlink() {
            let target = fs_err::read_link(&entry.source)?;
            check_symlink_target(&entry.source, Path::new(&entry.archive_path), &target)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, &entry.archive_path, &target)?;
        } else if ft.is_file() {
            let size = meta.len();
            let exec = meta.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if exec { 0o755 } else { 0o644 });
            header.set_size(size);
            let file = fs_err::File::open(&entry.source)?;
            let reader = ExactReader {
                inner: io::BufReader::with_capacity(BUF_SIZE, file),
                remaining: size,
            };
            builder
                .append_data(&mut header, &entry.archive_path, reader)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => ArchiveError::FileChanged {
                        path: entry.source.clone(),
                        expected: size,
                    },
                    _ => ArchiveError::Io(e),
                })?;
            files += 1;
        } else {
            return Err(unsupported(&entry.source, ft));
        }
    }
    Ok((builder.into_inner()?, files))
}

fn unsupported(path: &Path, ft: std::fs::FileType) -> ArchiveError {
    let kind = if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "unknown"
    };
    ArchiveError::UnsupportedFileType {
        path: path.to_owned(),
        kind,
    }
}

/// Reject absolute symlink targets and targets that climb above the root of
/// `link_path`'s namespace (checked lexically: the link's parent joined with
/// the target must never go above the root).
fn check_symlink_target(
    source: &Path,
    link_path: &Path,
    target: &Path,
) -> Result<(), ArchiveError> {
    if target.is_absolute() {
        return Err(ArchiveError::AbsoluteSymlink {
            path: source.to_owned(),
            target: target.to_owned(),
        });
    }
    let parent = link_path.parent().unwrap_or(Path::new(""));
    if lexical_depth_ok(parent, target).is_none() {
        return Err(ArchiveError::EscapingSymlink {
            path: source.to_owned(),
            target: target.to_owned(),
        });
    }
    Ok(())
}

/// Resolve `base` (relative, no `..`) joined with relative `rel` lexically;
/// `None` when the result climbs above the root.
fn lexical_depth_ok(base: &Path, rel: &Path) -> Option<Vec<std::ffi::OsString>> {
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    for c in base.components().chain(rel.components()) {
        match c {
            Component::Normal(n) => stack.push(n.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                stack.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(stack)
}

/// True for `a/b/c`: non-empty, relative, no empty, `.` or `..` components.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Walk `root` into sorted archive entries under `prefix`, checking symlinks
/// against the tree (not just the archive root) and rejecting special files
/// early, before any byte is written.
fn collect_tree(root: &Path, prefix: &str) -> Result<Vec<ArchiveEntry>, ArchiveError> {
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() && !is_plain_relative(prefix) {
        return Err(ArchiveError::InvalidPrefix {
            prefix: prefix.to_owned(),
        });
    }
    // Fail with the path when the root is missing or not a directory.
    let root_meta = fs_err::metadata(root)?;
    if !root_meta.is_dir() {
        return Err(ArchiveError::Io(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", root.display()),
        )));
    }
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        crate::cancel::check()?;
        let item = item.map_err(walk_error)?;
        let rel = item.path().strip_prefix(root).unwrap_or(item.path());
        let rel_str = rel
            .to_str()
            .ok_or_else(|| ArchiveError::NonUtf8Path {
                path: item.path().to_owned(),
            })?
            .to_owned();
        let archive_path = match (prefix.is_empty(), rel_str.is_empty()) {
            (true, true) => continue,
            (true, false) => rel_str,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}/{rel_str}"),
        };
        let ft = item.file_type();
        if ft.is_symlink() {
            let target = fs_err::read_link(item.path())?;
            check_symlink_target(item.path(), rel, &target)?;
        } else if !ft.is_dir() && !ft.is_file() {
            return Err(unsupported(item.path(), ft));
        }
        entries.push(ArchiveEntry {
            archive_path,
            source: item.path().to_owned(),
        });
    }
    entries.sort_by(|a, b| a.archive_path.as_bytes().cmp(b.archive_path.as_bytes()));
    Ok(entries)
}

fn walk_error(e: walkdir::Error) -> ArchiveError {
    let path = e.path().map(Path::to_owned);
    let io = e
        .into_io_error()
        .unwrap_or_else(|| io::Error::other("filesystem loop"));
    match path {
        Some(p) => ArchiveError::Io(io::Error::new(
            io.kind(),
            format!("{io} at {}", p.display()),
        )),
        None => ArchiveError::Io(io),
    }
}

/// Write the archive of `root` to `dest` atomically: the bytes go to a
/// temporary file next to `dest`, which is fsynced and renamed over `dest`
/// only on success. On any error the temporary file is removed and `dest` is
/// left as it was (absent, or its previous content).
pub fn write_archive_atomically(
    root: &Path,
    prefix: &str,
    dest: &Path,
    opts: &ArchiveOptions,
) -> Result<TreeSummary, ArchiveError> {
    write_atomically(dest, |file| write_tree(root, prefix, file, opts))
}

/// Create a temp file next to `dest`, let `f` fill it, then rename it into
/// place; dropping the `NamedTempFile` on error deletes it.
///
/// `f` writes through a [`NamedWriter`]: a write that fails (a full disk,
/// a quota) names `dest`, not just "No space left on device".
fn write_atomically<T>(
    dest: &Path,
    f: impl FnOnce(&mut NamedWriter<'_, std::fs::File>) -> Result<T, ArchiveError>,
) -> Result<T, ArchiveError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = dest.file_name().unwrap_or(OsStr::new("out"));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating a temporary file in {}: {e}", dir.display()),
            )
        })?;
    let value = f(&mut NamedWriter {
        inner: tmp.as_file_mut(),
        path: dest,
    })?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io::Error::new(e.kind(), format!("syncing {}: {e}", tmp.path().display())))?;
    // Archives are release artifacts: readable by everyone, like `tar` would
    // leave them, rather than the 0600 of a temp file.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| io::Error::new(e.kind(), format!("chmod {}: {e}", tmp.path().display())))?;
    tmp.persist(dest).map_err(|e| {
        io::Error::new(
            e.error.kind(),
            format!("renaming into {}: {}", dest.display(), e.error),
        )
    })?;
    // Make the rename itself durable; a failure here is not worth failing on.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(value)
}

/// A writer whose errors name the file being written (the file the
/// caller asked for, not the temporary file it goes through), keeping the
/// error's kind.
pub(crate) struct NamedWriter<'a, W> {
    inner: &'a mut W,
    path: &'a Path,
}

impl<W: Write> NamedWriter<'_, W> {
    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("writing {}: {e}", self.path.display()))
    }
}

impl<W: Write> Write for NamedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}

/// Unpack a tar stream from a container into `dest` (created if missing; must
/// be empty), treating every entry as hostile:
///
/// * absolute paths, `..` components and non-UTF-8 paths are rejected;
/// * device, FIFO and other special entries are rejected;
/// * symlinks with absolute targets, or targets that leave `dest`, are
///   rejected. Symlinks are created after everything else, and each one is
///   then re-resolved through the final tree (following other symlinks) so a
///   chain of individually harmless links cannot escape either;
/// * an entry whose parent path goes through a symlink is rejected, so no
///   write ever lands outside `dest`;
/// * hard links must point at a regular file unpacked earlier in the stream;
/// * setuid, setgid and sticky bits are stripped (not an error: container
///   images legitimately contain them, a bundle never needs them); files keep
///   their other permission bits, directories always get at least 0700 so the
///   unpack (and a later repair step) can write into them;
/// * the sum of entry sizes may not exceed `max_bytes`.
///
/// Owners, timestamps and xattrs in the stream are ignored. On error, `dest`
/// may hold a partial tree; the caller owns it and should remove it.
///
/// This reads the tar stream only up to its end-of-archive marker: to unpack
/// an archive file, use [`unpack_archive`], which also proves it intact.
pub fn unpack_safe<R: Read>(
    reader: R,
    dest: &Path,
    max_bytes: u64,
) -> Result<UnpackSummary, ArchiveError> {
    fs_err::create_dir_all(dest)?;
    if fs_err::read_dir(dest)?.next().is_some() {
        return Err(ArchiveError::DestinationNotEmpty {
            path: dest.to_owned(),
        });
    }
    let free = free_bytes(dest)?;
    let mut archive = tar::Archive::new(reader);
    let mut summary = UnpackSummary::default();
    let mut total: u64 = 0;
    let mut symlinks: Vec<(PathBuf, String, PathBuf)> = Vec::new();
    for entry in archive.entries().map_err(ArchiveError::from_io)? {
        crate::cancel::check()?;
        let mut entry = entry.map_err(ArchiveError::from_io)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = |reason| ArchiveError::UnsafeEntry {
            entry: raw.clone(),
            reason,
        };
        let rel = sanitize_entry_path(&entry.path_bytes()).map_err(unsafe_entry)?;
        let size = entry.header().entry_size()?;
        total = total.saturating_add(size);
        if total > max_bytes {
            return Err(ArchiveError::SizeLimit {
                entry: raw,
                limit: max_bytes,
            });
        }
        if total > free {
            return Err(ArchiveError::NoSpace {
                dest: dest.to_owned(),
                entry: raw,
                needed: total,
                free,
            });
        }
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // `./` itself: only meaningful as a directory.
            if kind.is_dir() {
                continue;
            }
            return Err(unsafe_entry(UnsafeReason::Conflict {
                existing: "directory",
            }));
        }
        if let Some(link) = symlink_in_parents(dest, &rel) {
            return Err(unsafe_entry(UnsafeReason::ThroughSymlink { symlink: link }));
        }
        let target = dest.join(&rel);
        let mode = entry.header().mode()? & 0o777;
        match kind {
            tar::EntryType::Directory => {
                match std::fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(unsafe_entry(UnsafeReason::Conflict { existing: "file" })),
                    Err(_) => {
                        fs_err::create_dir_all(&target)?;
                        summary.dirs += 1;
                    }
                }
                fs_err::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o700))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                ensure_parent(dest, &rel)?;
                remove_existing_file(&target)
                    .map_err(|existing| unsafe_entry(UnsafeReason::Conflict { existing }))?;
                let mut file = fs_err::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)?;
                let copied = copy_buffered(&mut entry, &mut file).map_err(ArchiveError::from_io)?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
                summary.files += 1;
                summary.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let link_path = Path::new(&link);
                let parent = rel.parent().unwrap_or(Path::new(""));
                if link.is_empty()
                    || link_path.is_absolute()
                    || lexical_depth_ok(parent, link_path).is_none()
                {
                    return Err(unsafe_entry(UnsafeReason::LinkEscapes { target: link }));
                }
                symlinks.push((rel, link, PathBuf::from(&raw)));
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                let link_str = String::from_utf8_lossy(&link).into_owned();
                let src_rel = sanitize_entry_path(&link).map_err(|_| {
                    unsafe_entry(UnsafeReason::LinkEscapes {
                        target: link_str.clone(),
                    })
                })?;
                let bad = || {
                    unsafe_entry(UnsafeReason::BadHardLink {
                        target: link_str.clone(),
                    })
                };
                if src_rel.as_os_str().is_empty() || symlink_in_parents(dest, &src_rel).is_some() {
                    return Err(bad());
                }
                let src = dest.join(&src_rel);
                match std::fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    _ => return Err(bad()),
                }
                ensure_parent(dest, &rel)?;
                remove_existing_file(&target)
                    .map_err(|existing| unsafe_entry(UnsafeReason::Conflict { existing }))?;
                fs_err::hard_link(&src, &target)?;
                summary.hardlinks += 1;
            }
            tar::EntryType::Char => {
                return Err(unsafe_entry(UnsafeReason::SpecialFile {
                    kind: "character device",
                }));
            }
            tar::EntryType::Block => {
                return Err(unsafe_entry(UnsafeReason::SpecialFile {
                    kind: "block device",
                }));
            }
            tar::EntryType::Fifo => {
                return Err(unsafe_entry(UnsafeReason::SpecialFile { kind: "fifo" }));
            }
            tar::EntryType::GNUSparse => {
                return Err(unsafe_entry(UnsafeReason::SpecialFile {
                    kind: "sparse file",
                }));
            }
            // PAX and GNU long-name records are consumed by the tar crate; a
            // stray one (or any unknown type) is refused rather than guessed.
            _ => return Err(unsafe_entry(UnsafeReason::SpecialFile { kind: "unknown" })),
        }
    }

    // Symlinks last: no file entry can have been written through one, and
    // each is re-checked against the final tree, following other links.
    for (rel, link, raw) in &symlinks {
        let unsafe_entry = |reason| ArchiveError::UnsafeEntry {
            entry: raw.display().to_string(),
            reason,
        };
        if let Some(l) = symlink_in_parents(dest, rel) {
            return Err(unsafe_entry(UnsafeReason::ThroughSymlink { symlink: l }));
        }
        ensure_parent(dest, rel)?;
        let target = dest.join(rel);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(unsafe_entry(UnsafeReason::Conflict {
                    existing: "directory",
                }));
            }
            Ok(_) => fs_err::remove_file(&target)?,
            Err(_) => {}
        }
        fs_err::os::unix::fs::symlink(link, &target)?;
        summary.symlinks += 1;
    }
    for (rel, link, raw) in &symlinks {
        if !resolves_inside(dest, rel) {
            return Err(ArchiveError::UnsafeEntry {
                entry: raw.display().to_string(),
                reason: UnsafeReason::LinkEscapes {
                    target: link.clone(),
                },
            });
        }
    }
    Ok(summary)
}

/// A tar path made safe to join onto the destination: `.` components
/// dropped; absolute, `..` and non-UTF-8 paths refused.
fn sanitize_entry_path(bytes: &[u8]) -> Result<PathBuf, UnsafeReason> {
    let s = std::str::from_utf8(bytes).map_err(|_| UnsafeReason::NonUtf8)?;
    let mut out = PathBuf::new();
    for c in Path::new(s).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(UnsafeReason::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(UnsafeReason::AbsolutePath),
        }
    }
    Ok(out)
}

/// The first proper ancestor of `rel` under `dest` that is a symlink.
fn symlink_in_parents(dest: &Path, rel: &Path) -> Option<String> {
    let mut cur = PathBuf::new();
    let parent = rel.parent()?;
    for c in parent.components() {
        cur.push(c);
        if let Ok(m) = std::fs::symlink_metadata(dest.join(&cur))
            && m.file_type().is_symlink()
        {
            return Some(cur.display().to_string());
        }
    }
    None
}

fn ensure_parent(dest: &Path, rel: &Path) -> Result<(), ArchiveError> {
    if let Some(parent) = rel.parent() {
        fs_err::create_dir_all(dest.join(parent))?;
    }
    Ok(())
}

/// Remove a file or symlink already at `path` (a later tar entry replaces an
/// earlier one, as with GNU tar); a directory there is a conflict.
fn remove_existing_file(path: &Path) -> Result<(), &'static str> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err("directory"),
        Ok(_) => std::fs::remove_file(path).map_err(|_| "file"),
        Err(_) => Ok(()),
    }
}

/// Follow `rel` through the tree under `dest`, resolving every symlink on the
/// way (at most 40, like the kernel); false if it ever climbs above `dest`
/// or loops.
fn resolves_inside(dest: &Path, rel: &Path) -> bool {
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut cur: Vec<std::ffi::OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.to_str() {
            Some(".") => continue,
            Some("..") => {
                if cur.pop().is_none() {
                    return false;
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let here: PathBuf = cur.iter().collect();
        let Ok(target) = std::fs::read_link(dest.join(&here)) else {
            continue;
        };
        hops += 1;
        if hops > 40 || target.is_absolute() {
            return false;
        }
        cur.pop();
        for (i, tc) in target.components().enumerate() {
            todo.insert(i, tc.as_os_str().to_owned());
        }
    }
    true
}

/// The environment variable that sets [`unpack_limit`].
pub const UNPACK_LIMIT_ENV: &str = "HERMETIC_UNPACK_LIMIT";

/// The default [`unpack_limit`]: far above any bundle, far below a bomb.
pub const DEFAULT_UNPACK_LIMIT: u64 = 64 << 30;

/// How many bytes of files hermetic unpacks from one archive or container
/// (the build's bundle, `sbom`, `image` and `verify` of an archive):
/// `$HERMETIC_UNPACK_LIMIT` (`128G`, `500M`, a byte count) or
/// [`DEFAULT_UNPACK_LIMIT`]. [`unpack_safe`] also stops before the files
/// would outgrow the destination's free space.
pub fn unpack_limit() -> Result<u64, ArchiveError> {
    match std::env::var(UNPACK_LIMIT_ENV) {
        Err(_) => Ok(DEFAULT_UNPACK_LIMIT),
        Ok(value) => parse_size(&value).ok_or(ArchiveError::InvalidUnpackLimit { value }),
    }
}

/// `123`, `500M`, `64G`, `1T` (powers of 1024); `None` for anything else.
fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, shift) = match value.char_indices().last()? {
        (i, 'k' | 'K') => (&value[..i], 10),
        (i, 'm' | 'M') => (&value[..i], 20),
        (i, 'g' | 'G') => (&value[..i], 30),
        (i, 't' | 'T') => (&value[..i], 40),
        _ => (value, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Bytes free to an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> Result<u64, ArchiveError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        ArchiveError::NonUtf8Path {
            path: dir.to_owned(),
        }
    })?;
    // SAFETY: statvfs only writes into the struct it is given, and `path`
    // is a NUL-terminated string that outlives the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        let e = io::Error::last_os_error();
        return Err(ArchiveError::Io(io::Error::new(
            e.kind(),
            format!("cannot read the free space of {}: {e}", dir.display()),
        )));
    }
    // A file system that reports no size at all (some FUSE ones) says
    // nothing about its free space either: the write itself will tell.
    if stat.f_blocks == 0 {
        return Ok(u64::MAX);
    }
    // The fields are u64 on 64-bit Linux, narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

fn copy_buffered(from: &mut impl Read, to: &mut (impl Write + ?Sized)) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0;
    loop {
        crate::cancel::check()?;
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A stable SHA-256 (hex) over a source tree, for the build record.
///
/// The tree is walked without following symlinks and its entries sorted by
/// the bytes of their relative path. Each entry contributes a NUL-separated
/// record: `D <path>` for a directory, `F <path> <x|-> <sha256 of content>`
/// for a regular file (`x` when any execute bit is set), `L <path> <target>`
/// for a symlink. Nothing else (owner, mtime, other mode bits) counts.
///
/// Only `.git` (directory or file, at any depth) is ignored: recipes list
/// their own excludes, and guessing more (`target/`, `dist/`) here would hide
/// real inputs. Devices, FIFOs and sockets are an error naming the file.
pub fn tree_hash(root: &Path) -> Result<String, ArchiveError> {
    Ok(source_tree(root)?.sha256)
}

/// A source tree as a build record keeps it: the [`tree_hash`] and, per
/// entry, what that hash covers, so a rebuild whose tree differs can name
/// the entries that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// The tree hash, hex.
    pub sha256: String,
    /// Relative path -> `<sha256>` (a file), `<sha256> x` (an executable
    /// file), `-> <target>` (a symlink) or `dir`.
    pub entries: BTreeMap<String, String>,
}

/// [`tree_hash`] with the entries it covers.
pub fn source_tree(root: &Path) -> Result<SourceTree, ArchiveError> {
    fs_err::metadata(root)?;
    let mut items = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for item in walker {
        let item = item.map_err(walk_error)?;
        let rel = item.path().strip_prefix(root).unwrap_or(item.path());
        let rel = rel
            .to_str()
            .ok_or_else(|| ArchiveError::NonUtf8Path {
                path: item.path().to_owned(),
            })?
            .to_owned();
        items.push((rel, item));
    }
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut hasher = Sha256::new();
    let mut entries = BTreeMap::new();
    for (rel, item) in items {
        let ft = item.file_type();
        let (fields, entry): (Vec<String>, String) = if ft.is_dir() {
            (vec!["D".into(), rel.clone()], "dir".into())
        } else if ft.is_symlink() {
            let target = fs_err::read_link(item.path())?;
            let target = target.to_str().ok_or_else(|| ArchiveError::NonUtf8Path {
                path: item.path().to_owned(),
            })?;
            (
                vec!["L".into(), rel.clone(), target.to_owned()],
                format!("-> {target}"),
            )
        } else if ft.is_file() {
            let meta = fs_err::symlink_metadata(item.path())?;
            let exec = if meta.mode() & 0o111 != 0 { "x" } else { "-" };
            let (sha, _) = sha256_file(item.path())?;
            let entry = if exec == "x" {
                format!("{sha} x")
            } else {
                sha.clone()
            };
            (vec!["F".into(), rel.clone(), exec.into(), sha], entry)
        } else {
            return Err(unsupported(item.path(), ft));
        };
        for f in fields {
            hasher.update(f.as_bytes());
            hasher.update([0]);
        }
        hasher.update(b"\n");
        entries.insert(rel, entry);
    }
    Ok(SourceTree {
        sha256: hex::encode(hasher.finalize()),
        entries,
    })
}

/// How two source tree listings differ, as lines naming each entry
/// (`changed <path>`, `only in the record <path>`, `only here <path>`),
/// in path order.
pub fn source_tree_changes(
    recorded: &BTreeMap<String, String>,
    here: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut paths: Vec<&String> = recorded.keys().chain(here.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| match (recorded.get(p), here.get(p)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(format!("changed {p}")),
            (Some(_), None) => Some(format!("only in the record {p}")),
            (None, _) => Some(format!("only here {p}")),
        })
        .collect()
}

/// The `SOURCE_DATE_EPOCH` for a build, from (in order): the environment
/// variable (which must be a non-negative integer; an empty value counts as
/// unset), the time of the last commit that touched `source_dir` in the git
/// checkout containing it (else, for a directory no commit touched yet, the
/// checkout's last commit), then the recipe's value. None of the three is
/// an error that names them.
///
/// The last commit touching the source, not the checkout's: in a repository
/// holding several projects, a commit to one does not change the others'
/// epoch, and so neither their archives nor their cache keys.
pub fn source_date_epoch(
    source_dir: &Path,
    recipe_epoch: Option<u64>,
) -> Result<u64, ArchiveError> {
    let env = std::env::var_os("SOURCE_DATE_EPOCH");
    epoch_from(env.as_deref(), source_dir, recipe_epoch)
}

fn epoch_from(
    env: Option<&OsStr>,
    source_dir: &Path,
    recipe_epoch: Option<u64>,
) -> Result<u64, ArchiveError> {
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let s = value.to_string_lossy();
        return s
            .trim()
            .parse::<u64>()
            .map_err(|_| ArchiveError::InvalidSourceDateEpoch {
                value: s.into_owned(),
            });
    }
    if let Some(t) = git_commit_time(source_dir) {
        return Ok(t);
    }
    recipe_epoch.ok_or_else(|| ArchiveError::NoSourceDateEpoch {
        dir: source_dir.to_owned(),
    })
}

/// The commit time of the last commit touching `dir`, else of the last
/// commit; `None` when git is missing, `dir` is not in a checkout, or the
/// checkout has no commits.
fn git_commit_time(dir: &Path) -> Option<u64> {
    let log = |pathspec: &[&str]| -> Option<u64> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["log", "-1", "--format=%ct"])
            .args(pathspec)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    log(&["--", "."]).or_else(|| log(&[]))
}

/// Name of the checksum file written next to release artifacts.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// Write `dir/SHA256SUMS` atomically in the format `sha256sum -c` reads:
/// `<hex>  <name>\n` per file, sorted by name.
pub fn write_sha256sums(dir: &Path, files: &[(String, String)]) -> Result<(), ArchiveError> {
    let text = render_sha256sums(files)?;
    write_atomically(&dir.join(SHA256SUMS), |f| {
        f.write_all(text.as_bytes())?;
        Ok(())
    })
}

/// The text [`write_sha256sums`] writes.
pub fn render_sha256sums(files: &[(String, String)]) -> Result<String, ArchiveError> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut text = String::new();
    for (name, hex) in sorted {
        if name.is_empty() || name.contains(['\n', '\r', '\\']) {
            return Err(ArchiveError::InvalidChecksumName { name: name.clone() });
        }
        if !is_sha256_hex(hex) {
            return Err(ArchiveError::InvalidChecksum {
                name: name.clone(),
                hex: hex.clone(),
            });
        }
        text.push_str(&format!("{hex}  {name}\n"));
    }
    Ok(text)
}

/// Read a SHA256SUMS file (text `<hex>  <name>` or binary `<hex> *<name>`
/// lines) into `(name, hex)` pairs, in file order.
pub fn read_sha256sums(path: &Path) -> Result<Vec<(String, String)>, ArchiveError> {
    parse_sha256sums(&fs_err::read_to_string(path)?, path)
}

/// [`read_sha256sums`] of text read from `path` (which errors name).
pub fn parse_sha256sums(text: &str, path: &Path) -> Result<Vec<(String, String)>, ArchiveError> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let malformed = |reason: &str| ArchiveError::MalformedSha256Sums {
            path: path.to_owned(),
            line: i + 1,
            reason: reason.to_owned(),
        };
        let (hex, rest) = line
            .split_once(' ')
            .ok_or_else(|| malformed("expected `<sha256>  <name>`"))?;
        if !is_sha256_hex(hex) {
            return Err(malformed(&format!(
                "`{hex}` is not 64 lowercase hex digits"
            )));
        }
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(|| {
                malformed("expected two spaces (or ` *`) between the hash and the name")
            })?;
        if name.is_empty() {
            return Err(malformed("missing file name"));
        }
        if !seen.insert(name.to_owned()) {
            return Err(malformed(&format!("`{name}` is listed twice")));
        }
        out.push((name.to_owned(), hex.to_owned()));
    }
    Ok(out)
}

/// SHA-256 (hex) and size of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut file = fs_err::File::open(path)?;
    let mut hw = HashingWriter::new(io::sink());
    copy_buffered(&mut file, &mut hw)?;
    let (_, hex, size) = hw.finish();
    Ok((hex, size))
}

/// SHA-256 (hex) of bytes in memory.
pub fn sha256_bytes(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What an entry of an image filesystem layer is (see "Image filesystem
/// layers" in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// A directory.
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    /// A symlink to this target (stored verbatim: an image's own absolute
    /// links such as `/etc/alternatives/…` are part of it).
    Symlink(String),
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
    /// A FIFO.
    Fifo,
}

/// One entry of an image filesystem layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsEntry {
    /// Relative path, no `./` and no trailing slash.
    pub path: String,
    /// What kind of entry it is.
    pub kind: FsKind,
    /// Mode bits (`0o7777` is kept).
    pub mode: u32,
    /// Owner user ID.
    pub uid: u64,
    /// Owner group ID.
    pub gid: u64,
    /// Modification time, in seconds since the epoch.
    pub mtime: u64,
}

/// Writes an image filesystem layer (uncompressed tar) by the rules in the
/// module docs, hashing it as it goes.
pub struct FsLayerWriter<W: Write> {
    builder: tar::Builder<HashingWriter<W>>,
    epoch: u64,
    last: Option<String>,
}

impl<W: Write> FsLayerWriter<W> {
    /// A writer whose mtimes are clamped to `epoch`.
    pub fn new(out: W, epoch: u64) -> Self {
        FsLayerWriter {
            builder: tar::Builder::new(HashingWriter::new(out)),
            epoch,
            last: None,
        }
    }

    /// Appends one entry; `data` gives a regular file's bytes (exactly its
    /// size). Entries must come sorted and unique.
    pub fn append(&mut self, entry: &FsEntry, data: impl Read) -> Result<(), ArchiveError> {
        if !is_plain_relative(&entry.path) {
            return Err(ArchiveError::InvalidEntryPath {
                path: entry.path.clone(),
            });
        }
        if let Some(last) = &self.last
            && last.as_bytes() >= entry.path.as_bytes()
        {
            return Err(ArchiveError::UnsortedEntries {
                path: entry.path.clone(),
                previous: last.clone(),
            });
        }
        self.last = Some(entry.path.clone());
        let mut header = tar::Header::new_gnu();
        header.set_mtime(entry.mtime.min(self.epoch));
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_username("")?;
        header.set_groupname("")?;
        header.set_mode(entry.mode & 0o7777);
        header.set_size(0);
        let b = &mut self.builder;
        match &entry.kind {
            FsKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut header, &entry.path, io::empty())?;
            }
            FsKind::File(size) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let reader = ExactReader {
                    inner: data,
                    remaining: *size,
                };
                b.append_data(&mut header, &entry.path, reader)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => ArchiveError::FileChanged {
                            path: PathBuf::from(&entry.path),
                            expected: *size,
                        },
                        _ => ArchiveError::Io(e),
                    })?;
            }
            FsKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut header, &entry.path, target)?;
            }
            FsKind::Char(major, minor) | FsKind::Block(major, minor) => {
                header.set_entry_type(if matches!(entry.kind, FsKind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                header.set_device_major(*major)?;
                header.set_device_minor(*minor)?;
                b.append_data(&mut header, &entry.path, io::empty())?;
            }
            FsKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut header, &entry.path, io::empty())?;
            }
        }
        Ok(())
    }

    /// Ends the tar and returns the output, the SHA-256 (hex) and the size
    /// of what was written.
    pub fn finish(self) -> Result<(W, String, u64), ArchiveError> {
        let hashing = self.builder.into_inner()?;
        let (mut out, sha256, size) = hashing.finish();
        out.flush()?;
        Ok((out, sha256, size))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_source_tree_lists_what_its_hash_covers_and_names_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.py"), b"print(1)\n").unwrap();
        fs_err::create_dir(dir.path().join("pkg")).unwrap();
        fs_err::write(dir.path().join("pkg/run"), b"#!/bin/sh\n").unwrap();
        fs_err::set_permissions(
            dir.path().join("pkg/run"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.py", dir.path().join("link")).unwrap();
        let before = super::source_tree(dir.path()).unwrap();
        assert_eq!(before.sha256, super::tree_hash(dir.path()).unwrap());
        assert_eq!(before.entries["pkg"], "dir");
        assert_eq!(before.entries["link"], "-> a.py");
        assert!(before.entries["pkg/run"].ends_with(" x"), "{before:?}");
        assert_eq!(before.entries["a.py"].len(), 64);

        fs_err::write(dir.path().join("a.py"), b"print(2)\n").unwrap();
        fs_err::remove_file(dir.path().join("link")).unwrap();
        fs_err::write(dir.path().join("stray.log"), b"x").unwrap();
        let after = super::source_tree(dir.path()).unwrap();
        assert_ne!(before.sha256, after.sha256);
        assert_eq!(
            super::source_tree_changes(&before.entries, &after.entries),
            [
                "changed a.py",
                "only in the record link",
                "only here stray.log"
            ]
        );
        assert!(super::source_tree_changes(&after.entries, &after.entries).is_empty());
    }
    use super::*;

    #[test]
    fn unpack_limits_parse_as_binary_sizes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("64g"), Some(64 << 30));
        assert_eq!(parse_size(" 1T "), Some(1 << 40));
        assert_eq!(parse_size("8k"), Some(8 << 10));
        for bad in ["", "G", "1.5G", "-1", "12X", "1 G", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_full_disk_names_the_archive_being_written() {
        // /dev/full answers every write with ENOSPC, like a full disk.
        let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let tree = tempfile::tempdir().unwrap();
        // Incompressible, so the compressor has to write.
        let noise: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs_err::write(tree.path().join("big"), noise).unwrap();
        let dest = Path::new("/out/app-glibc2.31.tar.gz");
        for compression in [Compression::None, Compression::Gzip] {
            let opts = ArchiveOptions {
                source_date_epoch: 0,
                compression,
            };
            let mut named = NamedWriter {
                inner: &mut full,
                path: dest,
            };
            let err = write_tree(tree.path(), "app", &mut named, &opts).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("/out/app-glibc2.31.tar.gz"), "{text}");
            assert!(text.contains("No space left on device"), "{text}");
        }
    }

    #[test]
    fn epoch_env_wins_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            epoch_from(Some(OsStr::new("1700000000")), dir.path(), Some(5)).unwrap(),
            1_700_000_000
        );
        let err = epoch_from(Some(OsStr::new("yesterday")), dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("`yesterday`"), "{err}");
        let err = epoch_from(Some(OsStr::new("-1")), dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("`-1`"), "{err}");
    }

    #[test]
    fn epoch_falls_back_to_recipe_then_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            epoch_from(Some(OsStr::new("")), dir.path(), Some(42)).unwrap(),
            42
        );
        let err = epoch_from(None, dir.path(), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("SOURCE_DATE_EPOCH") && msg.contains("git") && msg.contains("recipe"),
            "{msg}"
        );
    }

    #[test]
    fn epoch_from_git_commit() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str], time: u64| {
            Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_COMMITTER_DATE", format!("@{time} +0000"))
                .env("GIT_AUTHOR_DATE", format!("@{time} +0000"))
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !git(&["init", "-q"], 0) {
            eprintln!("git unavailable; skipping");
            return;
        }
        // Two projects in one checkout, committed at different times.
        for (project, time) in [("a", 1_600_000_000), ("b", 1_650_000_000)] {
            std::fs::create_dir(dir.path().join(project)).unwrap();
            std::fs::write(dir.path().join(project).join("f"), "x").unwrap();
            assert!(git(&["add", project], time));
            assert!(git(
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "commit",
                    "-qm",
                    project
                ],
                time
            ));
        }
        let epoch = |sub: &str| epoch_from(None, &dir.path().join(sub), Some(1)).unwrap();
        assert_eq!(epoch("a"), 1_600_000_000, "a's own last commit");
        assert_eq!(epoch("b"), 1_650_000_000);
        assert_eq!(epoch(""), 1_650_000_000, "the checkout's top");
        std::fs::create_dir(dir.path().join("new")).unwrap();
        assert_eq!(epoch("new"), 1_650_000_000, "no commit touched it yet");
    }

    /// Incompressible bytes (xorshift), so deflate stores them verbatim.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// An archive of a small tree (a text file and 64 KiB of noise) written
    /// by hermetic's own writer, and the noise.
    fn archive_bytes(compression: Compression) -> (Vec<u8>, Vec<u8>) {
        let tree = tempfile::tempdir().unwrap();
        let data = noise(64 * 1024);
        std::fs::write(tree.path().join("hello.txt"), b"hello\n").unwrap();
        std::fs::write(tree.path().join("noise.bin"), &data).unwrap();
        let mut out = Vec::new();
        let opts = ArchiveOptions {
            source_date_epoch: 1,
            compression,
        };
        write_tree(tree.path(), "demo", &mut out, &opts).unwrap();
        (out, data)
    }

    /// Unpacks `bytes` (saved as `name`) with [`unpack_archive`].
    fn unpack_bytes(
        name: &str,
        bytes: &[u8],
    ) -> (tempfile::TempDir, Result<UnpackSummary, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let result = unpack_archive(&path, &dir.path().join("out"), 1 << 30);
        (dir, result)
    }

    /// `bytes` must be refused with an error naming the archive and saying `expect`.
    fn assert_refused(name: &str, bytes: &[u8], expect: &str) {
        let (_dir, result) = unpack_bytes(name, bytes);
        let err = result.expect_err(&format!("{name} was accepted"));
        let msg = err.to_string();
        assert!(msg.contains(name), "error does not name {name}: {msg}");
        assert!(
            msg.contains(expect),
            "{name}: expected `{expect}` in: {msg}"
        );
    }

    #[test]
    fn intact_archives_read_to_the_end() {
        for compression in [
            Compression::Gzip,
            Compression::Zstd { level: 3 },
            Compression::None,
        ] {
            let (bytes, _) = archive_bytes(compression);
            let (_dir, result) = unpack_bytes(&format!("ok.{}", compression.extension()), &bytes);
            assert_eq!(result.unwrap().files, 2, "{compression:?}");
        }
    }

    #[test]
    fn gzip_with_a_flipped_deflate_byte_is_a_crc_error() {
        let (mut gz, data) = archive_bytes(Compression::Gzip);
        // The noise is stored verbatim: flipping a byte of it leaves the
        // deflate stream valid, so only the CRC-32 can tell.
        let window = &data[30_000..30_032];
        let at = gz
            .windows(window.len())
            .position(|w| w == window)
            .expect("incompressible data is stored verbatim");
        gz[at + 7] ^= 0x01;
        // Cross-check, where gzip is installed, that it is a CRC error.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flipped.tar.gz");
        std::fs::write(&path, &gz).unwrap();
        if let Ok(out) = Command::new("gzip").arg("-t").arg(&path).output() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("crc error"), "gzip -t: {stderr}");
        }
        assert_refused("flipped.tar.gz", &gz, "checksum");
    }

    #[test]
    fn gzip_with_a_wrong_size_or_cut_trailer_is_refused() {
        let (gz, _) = archive_bytes(Compression::Gzip);
        let mut isize = gz.clone();
        let last = isize.len() - 1;
        isize[last] ^= 0x01;
        assert_refused("isize.tar.gz", &isize, "checksum");
        assert_refused("cut.tar.gz", &gz[..gz.len() - 4], "cut.tar.gz");
        assert_refused("halved.tar.gz", &gz[..gz.len() / 2], "halved.tar.gz");
    }

    #[test]
    fn bytes_after_the_compressed_stream_are_refused() {
        for compression in [Compression::Gzip, Compression::Zstd { level: 3 }] {
            let (bytes, _) = archive_bytes(compression);
            let name = format!("trailing.{}", compression.extension());
            let mut garbage = bytes.clone();
            garbage.extend_from_slice(b"garbage");
            assert_refused(&name, &garbage, "trailing data");
            // A second copy of the stream (a second gzip member or zstd
            // frame) is trailing data too: hermetic writes one.
            let mut twice = bytes.clone();
            twice.extend_from_slice(&bytes);
            assert_refused(&name, &twice, "trailing data");
        }
    }

    #[test]
    fn zstd_with_a_bad_checksum_is_refused_and_without_one_accepted() {
        let (mut zst, _) = archive_bytes(Compression::Zstd { level: 3 });
        // The frame ends with the 4-byte content checksum.
        let last = zst.len() - 1;
        zst[last] ^= 0x01;
        assert_refused("bad-checksum.tar.zst", &zst, "checksum");
        // A foreign archive written without a checksum is accepted.
        let (tar, _) = archive_bytes(Compression::None);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(false).unwrap();
        enc.write_all(&tar).unwrap();
        let plain = enc.finish().unwrap();
        let (_dir, result) = unpack_bytes("no-checksum.tar.zst", &plain);
        assert_eq!(result.unwrap().files, 2);
        assert_refused("cut.tar.zst", &plain[..plain.len() - 3], "cut.tar.zst");
    }

    #[test]
    fn data_hidden_after_the_tar_end_is_refused() {
        let (mut tar, _) = archive_bytes(Compression::None);
        tar.extend_from_slice(b"hidden entry");
        assert_refused("hidden.tar", &tar, "after the tar end-of-archive marker");
        let mut gz = Vec::new();
        compress_tar(tar.as_slice(), &mut gz, Compression::Gzip).unwrap();
        assert_refused("hidden.tar.gz", &gz, "after the tar end-of-archive marker");
    }

    #[test]
    fn a_plain_tar_cut_at_a_block_boundary_is_refused() {
        let (tar, _) = archive_bytes(Compression::None);
        assert_eq!(tar.len() % 512, 0);
        // Every cut at a block boundary: inside an entry's data, between
        // entries, and between or before the two end-of-archive blocks.
        for blocks in 1..tar.len() / 512 {
            let cut = &tar[..blocks * 512];
            assert_refused("cut.tar", cut, "truncated");
            let mut gz = Vec::new();
            compress_tar(cut, &mut gz, Compression::Gzip).unwrap();
            assert_refused("cut.tar.gz", &gz, "truncated");
        }
        let (_dir, result) = unpack_bytes("whole.tar", &tar);
        assert_eq!(result.unwrap().files, 2);
    }

    #[test]
    fn tar_blocks_follow_pax_sizes_and_base256_sizes() {
        // A PAX header that gives the entry's real size (the ustar field says 0).
        let mut tar = Vec::new();
        let record = b"16 size=100000\n";
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_cksum();
        tar.extend_from_slice(pax.as_bytes());
        tar.extend_from_slice(record);
        tar.resize(tar.len().next_multiple_of(512), 0);
        let mut file = tar::Header::new_ustar();
        file.set_path("big.bin").unwrap();
        file.set_size(0);
        file.set_cksum();
        tar.extend_from_slice(file.as_bytes());
        tar.extend(std::iter::repeat_n(1u8, 100_000));
        tar.resize(tar.len().next_multiple_of(512), 0);
        let whole = tar.len();
        tar.extend_from_slice(&[0; 1024]);
        let mut blocks = TarBlocks::default();
        // Fed in odd chunks, as a decoder hands them out.
        for chunk in tar[..whole].chunks(777) {
            blocks.feed(chunk);
        }
        assert!(!blocks.ended(), "the data of big.bin is not the end");
        blocks.feed(&tar[whole..]);
        assert!(blocks.ended());
        assert_eq!(
            header_size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
        assert_eq!(header_size(b"00000001750\0"), Some(1000));
    }

    #[test]
    fn an_empty_file_is_not_an_archive() {
        assert_refused("empty.tar.gz", b"", "empty");
    }

    #[test]
    fn decoding_errors_while_unpacking_name_the_archive() {
        let (mut gz, _) = archive_bytes(Compression::Gzip);
        // Garbage in place of the start of the deflate stream.
        for b in &mut gz[10..40] {
            *b = 0xff;
        }
        assert_refused("garbled.tar.gz", &gz, "garbled.tar.gz");
        let (_dir, result) = unpack_bytes("garbled.tar.gz", &gz);
        assert!(result.unwrap_err().is_corrupt());
    }

    #[test]
    fn lexical_escape() {
        assert!(lexical_depth_ok(Path::new("a/b"), Path::new("../c")).is_some());
        assert!(lexical_depth_ok(Path::new("a"), Path::new("../../c")).is_none());
        assert!(lexical_depth_ok(Path::new(""), Path::new("..")).is_none());
    }
}
