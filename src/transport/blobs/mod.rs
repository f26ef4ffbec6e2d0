//! Blobs: test binaries and included files, content-addressed by their SHA-256 and moved between
//! caller, broker and agent in chunks of at most [`BINARY_CHUNK`] bytes.
//!
//! One store, two sides:
//!
//! - the broker's [`Uploads`] ([`uploads`]): data enters through callers' `put_binary` requests
//!   ([`CallerRequest::PutBinary`]) into the broker's `binaries/` directory, and leaves through
//!   agents' `need_binary` requests ([`FromAgent::NeedBinary`]), answered one chunk at a time by
//!   [`read_chunk`];
//! - the agent's [`Downloads`] ([`downloads`]): data enters as the broker's answers
//!   ([`ToAgent::Binary`]) into the agent's cache directory, and leaves as the test binary a
//!   worker runs and the included files copied into its test directory, each hashed again by
//!   [`verify`] before it is used.
//!
//! What both sides share is here: a [`BlobDir`] names a blob only by a SHA-256 in hex (a hash
//! from the network never becomes any other path); bytes arrive in a part file of their own
//! (`<sha>.<tag>.part` beside the blobs) and are hashed as they come; a blob is renamed into place
//! only once complete and hashing to its SHA-256, so that a blob in place is always complete and
//! verified.
//!
//! [`CallerRequest::PutBinary`]: super::CallerRequest::PutBinary
//! [`FromAgent::NeedBinary`]: super::FromAgent::NeedBinary
//! [`ToAgent::Binary`]: super::ToAgent::Binary

pub mod downloads;
pub mod uploads;

pub use downloads::{Chunk, Downloads};
pub use uploads::{UploadKey, Uploads};

use sha2::Digest as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::BINARY_CHUNK;

/// Why a blob, or a chunk of one, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The chunk, or the blob it belongs to, is malformed: out of bounds, out of order, not
    /// hashing to its SHA-256. The transfer (if any) is abandoned: send the blob again from 0.
    #[error("{0}")]
    BadChunk(String),
    /// The caller (or all callers together) has too many unfinished uploads, or too many bytes
    /// announced in them.
    #[error("{0}")]
    Quota(String),
    /// The blobs cannot be written or read.
    #[error("{0}")]
    Storage(String),
    /// A blob in place no longer hashes to its SHA-256 (someone wrote into the directory).
    #[error("{0}")]
    Changed(String),
}

impl BlobError {
    /// The refusal code the broker answers with.
    pub fn code(&self) -> &'static str {
        match self {
            BlobError::BadChunk(_) => "bad_chunk",
            BlobError::Quota(_) => "upload_quota",
            BlobError::Storage(_) | BlobError::Changed(_) => "storage",
        }
    }
}

/// A directory of blobs, each named by its SHA-256 in hex.
#[derive(Debug, Clone)]
pub struct BlobDir(PathBuf);

impl BlobDir {
    /// The blobs of `dir` (which is neither created nor read here).
    pub fn new(dir: PathBuf) -> BlobDir {
        BlobDir(dir)
    }

    /// Where the blob `sha` is stored; `None` when `sha` is not a SHA-256 in hex (64 hex
    /// digits): only such names become paths.
    pub fn path(&self, sha: &str) -> Option<PathBuf> {
        (sha.len() == 64 && sha.bytes().all(|c| c.is_ascii_hexdigit())).then(|| self.0.join(sha))
    }

    /// Whether the blob `sha` is in place.
    pub fn has(&self, sha: &str) -> bool {
        self.path(sha).is_some_and(|p| p.is_file())
    }

    /// The names and paths of what the directory holds (nothing when it cannot be read).
    fn entries(&self) -> impl Iterator<Item = (String, PathBuf)> {
        std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
    }

    /// A new part file for the blob `sha`, `<sha>.<tag>.part`: `tag` keeps it apart from the
    /// other transfers of the same blob.
    fn part(&self, sha: &str, tag: &str) -> std::io::Result<Part> {
        let path = self.0.join(format!("{sha}.{tag}.part"));
        let file = std::fs::File::create(&path)?;
        Ok(Part {
            path,
            file,
            hasher: sha2::Sha256::new(),
            received: 0,
        })
    }
}

/// Whether a file name is a part file's.
fn is_part(name: &str) -> bool {
    name.ends_with(".part")
}

/// A blob being received: its bytes so far, in a part file, and their running SHA-256.
struct Part {
    path: PathBuf,
    file: std::fs::File,
    hasher: sha2::Sha256,
    /// How many bytes were written.
    received: u64,
}

/// Why a part file did not become its blob (it is removed).
enum Unfinished {
    /// Its bytes do not hash to the SHA-256 expected.
    Mismatch,
    /// It could not be written, or moved into place.
    Io(std::io::Error),
}

impl Part {
    /// Writes `bytes` after those received and hashes them.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.received += bytes.len() as u64;
        Ok(())
    }

    /// Closes and removes the part file.
    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }

    /// Moves the part file to `dest` (atomically) if its bytes hash to `sha` (lowercase hex),
    /// with the permissions `mode` when given; otherwise removes it.
    fn finish(self, sha: &str, dest: &Path, mode: Option<u32>) -> Result<(), Unfinished> {
        use std::os::unix::fs::PermissionsExt as _;
        let Part {
            path, file, hasher, ..
        } = self;
        drop(file);
        let result = if super::hex(&hasher.finalize()) != sha {
            Err(Unfinished::Mismatch)
        } else {
            mode.map_or(Ok(()), |m| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m))
            })
            .and_then(|_| std::fs::rename(&path, dest))
            .map_err(Unfinished::Io)
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    }
}

/// Where a chunk of `len` bytes at `offset` ends, and whether it fits a blob of `total` bytes:
/// it ends within the blob, and only the blob's last chunk may be empty.
fn chunk_end(offset: u64, len: usize, total: u64) -> (u64, bool) {
    let end = offset.saturating_add(len as u64);
    (end, end <= total && (len > 0 || end == total))
}

/// Checks that the file at `path` hashes to `sha` (SHA-256, hex): what is used is what was asked
/// for, whoever could write to the directory since.
pub fn verify(path: &Path, sha: &str) -> Result<(), BlobError> {
    let digest = super::sha256_file(path).map_err(|e| {
        BlobError::Storage(format!("cannot read the cached {}: {e}", path.display()))
    })?;
    if digest != sha {
        return Err(BlobError::Changed(format!(
            "the cached {} no longer matches its SHA-256 {sha}: removed; the next run fetches it again",
            path.display()
        )));
    }
    Ok(())
}

/// Reads the chunk (at most [`BINARY_CHUNK`] bytes) of the file at `path` that starts at
/// `offset`, and the file's size.
pub fn read_chunk(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    if offset > total {
        return Err(std::io::Error::other("offset past the end"));
    }
    f.seek(std::io::SeekFrom::Start(offset))?;
    let left = usize::try_from(total - offset).unwrap_or(usize::MAX);
    let mut buf = Vec::with_capacity(BINARY_CHUNK.min(left));
    f.take(BINARY_CHUNK as u64).read_to_end(&mut buf)?;
    Ok((buf, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_read_back_bounded() {
        let d = std::env::temp_dir().join(format!("loads-blobs-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join("blob");
        std::fs::write(&p, vec![7u8; BINARY_CHUNK + 10]).expect("write");
        let (first, total) = read_chunk(&p, 0).expect("first");
        assert_eq!(
            (first.len(), total),
            (BINARY_CHUNK, BINARY_CHUNK as u64 + 10)
        );
        let (rest, _) = read_chunk(&p, BINARY_CHUNK as u64).expect("rest");
        assert_eq!(rest.len(), 10);
        assert!(read_chunk(&p, total + 1).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn cached_blobs_are_hashed_again_before_they_run() {
        let p = std::env::temp_dir().join(format!("loads-verify-{}", std::process::id()));
        std::fs::write(&p, b"binary").expect("write");
        let sha = crate::transport::sha256_hex(b"binary");
        assert!(verify(&p, &sha).is_ok());
        std::fs::write(&p, b"tampered").expect("write");
        assert!(verify(&p, &sha).is_err());
        let _ = std::fs::remove_file(&p);
    }
}
