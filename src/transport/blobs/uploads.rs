//! The broker's side of the blob store: callers' uploads into its `binaries/` directory.
//!
//! Data enters through callers' `put_binary` requests ([`CallerRequest::PutBinary`]), chunk by
//! chunk: each upload — one caller's sending of one blob — has its own part file
//! (`binaries/<sha>.<n>.part`, `n` a number the broker gives it) and its own running SHA-256,
//! so that two callers sending the same new blob at once never write into each other's bytes.
//! Once all the announced bytes have arrived and hash to the announced SHA-256, the part file is
//! renamed to `binaries/<sha>` (atomically: a blob in place is always complete and verified),
//! and every other unfinished upload of that blob is dropped; their later chunks are answered
//! "complete" without being stored, so a verified blob is never replaced.
//!
//! Each caller may have at most [`MAX_UPLOADS_PER_CALLER`] unfinished uploads announcing at most
//! [`MAX_UPLOAD_BYTES_PER_CALLER`] bytes in all (and all callers together
//! [`MAX_UPLOADS`] and [`MAX_UPLOAD_BYTES`]); an upload that gets no chunk for
//! [`STALE_UPLOAD`] is abandoned and its part file removed. At broker start every part file
//! left by a previous broker is removed.
//!
//! Data leaves through agents' `need_binary` requests ([`FromAgent::NeedBinary`]): the broker
//! answers with one chunk of at most [`BINARY_CHUNK`] bytes ([`read_chunk`]).
//!
//! [`CallerRequest::PutBinary`]: crate::transport::CallerRequest::PutBinary
//! [`FromAgent::NeedBinary`]: crate::transport::FromAgent::NeedBinary
//! [`BINARY_CHUNK`]: crate::transport::BINARY_CHUNK
//! [`read_chunk`]: super::read_chunk

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{BlobDir, BlobError, Part, Unfinished, chunk_end, is_part};

/// Most bytes a blob (test binary, included file) may have.
pub const MAX_BLOB: u64 = 4 * 1024 * 1024 * 1024;
/// Most unfinished uploads one caller may have at a time.
pub const MAX_UPLOADS_PER_CALLER: usize = 4;
/// Most bytes one caller's unfinished uploads may announce in all (two of the largest blobs).
pub const MAX_UPLOAD_BYTES_PER_CALLER: u64 = 2 * MAX_BLOB;
/// Most unfinished uploads of all callers together.
pub const MAX_UPLOADS: usize = 32;
/// Most bytes the unfinished uploads of all callers together may announce.
pub const MAX_UPLOAD_BYTES: u64 = 8 * MAX_BLOB;
/// An upload that gets no chunk for this long is abandoned (its part file removed).
pub const STALE_UPLOAD: Duration = Duration::from_secs(10 * 60);
/// Longest upload name a caller may give (see [`UploadKey::upload`]).
pub const MAX_UPLOAD_NAME: usize = 64;

/// What identifies an upload: who sends which blob, under which name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UploadKey {
    /// The caller (the broker's idea of who sent the request).
    pub caller: String,
    /// The blob's SHA-256, hex.
    pub sha256: String,
    /// The caller's name for this upload (several uploads of one blob by one caller at once),
    /// empty when it gave none.
    pub upload: String,
}

/// An upload in progress.
struct Upload {
    /// Where its bytes go.
    part: Part,
    total: u64,
    last_chunk: Instant,
}

/// The broker's unfinished uploads, and the directory blobs are stored in.
pub struct Uploads {
    dir: BlobDir,
    uploads: BTreeMap<UploadKey, Upload>,
    /// The number of the next part file.
    next: u64,
}

/// `n` bytes in GiB or MiB, for messages.
fn size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else {
        format!("{} MiB", n.div_ceil(1 << 20))
    }
}

impl Uploads {
    /// The uploads of the blobs stored in `dir`, none yet: part files left there by an earlier
    /// broker are removed (their uploads cannot be resumed).
    pub fn new(dir: PathBuf) -> Uploads {
        let dir = BlobDir::new(dir);
        for (_, path) in dir.entries().filter(|(name, _)| is_part(name)) {
            let _ = std::fs::remove_file(path);
        }
        Uploads {
            dir,
            uploads: BTreeMap::new(),
            next: 0,
        }
    }

    /// Where the blob `sha` is stored; `None` when `sha` is not a SHA-256 in hex.
    pub fn path(&self, sha: &str) -> Option<PathBuf> {
        self.dir.path(sha)
    }

    /// How many uploads are unfinished.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.uploads.len()
    }

    /// Whether no upload is unfinished.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.uploads.is_empty()
    }

    /// Abandons the uploads that got no chunk since `now - STALE_UPLOAD`, removing their part
    /// files.
    pub fn expire(&mut self, now: Instant) {
        let stale: Vec<UploadKey> = self
            .uploads
            .iter()
            .filter(|(_, u)| now.saturating_duration_since(u.last_chunk) > STALE_UPLOAD)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.drop_upload(&k);
        }
    }

    fn drop_upload(&mut self, key: &UploadKey) {
        if let Some(u) = self.uploads.remove(key) {
            u.part.discard();
        }
    }

    /// Takes the chunk `bytes` of the upload `key`, at `offset` of a blob of `total` bytes, at
    /// time `now`. Returns whether the blob is complete (verified and in place). A chunk at 0
    /// starts the upload (again, if it was under way); the others must follow the bytes
    /// received. A chunk of a blob already in place is not stored: the answer is "complete".
    pub fn put(
        &mut self,
        key: UploadKey,
        offset: u64,
        total: u64,
        bytes: &[u8],
        now: Instant,
    ) -> Result<bool, BlobError> {
        self.expire(now);
        let path = self
            .path(&key.sha256)
            .ok_or_else(|| BlobError::BadChunk("put_binary needs a SHA-256 in hex".into()))?;
        if key.upload.len() > MAX_UPLOAD_NAME {
            return Err(BlobError::BadChunk(format!(
                "an upload's name has at most {MAX_UPLOAD_NAME} bytes"
            )));
        }
        if path.is_file() {
            // Complete and verified already (maybe by another caller's upload, while this one
            // was under way): these bytes are not needed.
            self.drop_upload(&key);
            return Ok(true);
        }
        let (end, fits) = chunk_end(offset, bytes.len(), total);
        if total > MAX_BLOB || !fits {
            self.drop_upload(&key);
            return Err(BlobError::BadChunk(format!(
                "chunk {offset}..{end} of a {total}-byte blob is out of bounds (at most {MAX_BLOB} bytes)"
            )));
        }
        if offset == 0 {
            self.drop_upload(&key);
            self.check_quota(&key.caller, total)?;
            let part = self
                .dir
                .part(&key.sha256, &self.next.to_string())
                .map_err(storage)?;
            self.next += 1;
            self.uploads.insert(
                key.clone(),
                Upload {
                    part,
                    total,
                    last_chunk: now,
                },
            );
        }
        let Some(u) = self.uploads.get_mut(&key) else {
            return Err(BlobError::BadChunk(format!(
                "chunk at {offset} of an upload that was not started (or was abandoned): send the blob again from 0"
            )));
        };
        if u.part.received != offset || u.total != total {
            let msg = format!(
                "chunk at {offset} of a {total}-byte blob does not follow the {} bytes received of {}: send the blob again from 0",
                u.part.received, u.total
            );
            self.drop_upload(&key);
            return Err(BlobError::BadChunk(msg));
        }
        if let Err(e) = u.part.append(bytes) {
            self.drop_upload(&key);
            return Err(storage(e));
        }
        u.last_chunk = now;
        if end < total {
            return Ok(false);
        }
        let Some(u) = self.uploads.remove(&key) else {
            return Err(BlobError::Storage("the upload vanished".into()));
        };
        match u.part.finish(&key.sha256.to_ascii_lowercase(), &path, None) {
            Ok(()) => {}
            Err(Unfinished::Mismatch) => {
                return Err(BlobError::BadChunk(
                    "the blob does not match its SHA-256".into(),
                ));
            }
            Err(Unfinished::Io(e)) => return Err(storage(e)),
        }
        // The other uploads of this blob are not needed any more.
        let others: Vec<UploadKey> = self
            .uploads
            .keys()
            .filter(|k| k.sha256 == key.sha256)
            .cloned()
            .collect();
        for k in others {
            self.drop_upload(&k);
        }
        Ok(true)
    }

    /// Refuses a new upload of `total` bytes by `caller` beyond the quotas.
    fn check_quota(&self, caller: &str, total: u64) -> Result<(), BlobError> {
        let (mut count, mut bytes, mut all_bytes) = (0usize, 0u64, 0u64);
        for (k, u) in &self.uploads {
            all_bytes = all_bytes.saturating_add(u.total);
            if k.caller == caller {
                count += 1;
                bytes = bytes.saturating_add(u.total);
            }
        }
        let expiry = STALE_UPLOAD.as_secs() / 60;
        if count >= MAX_UPLOADS_PER_CALLER {
            return Err(BlobError::Quota(format!(
                "this caller already has {count} unfinished uploads, and may have at most {MAX_UPLOADS_PER_CALLER} unfinished uploads at a time: finish them, or wait until they expire ({expiry} minutes after their last chunk)"
            )));
        }
        if bytes.saturating_add(total) > MAX_UPLOAD_BYTES_PER_CALLER {
            return Err(BlobError::Quota(format!(
                "this caller's unfinished uploads would announce {} in all, and may announce at most {}: finish them, or wait until they expire ({expiry} minutes after their last chunk)",
                size(bytes.saturating_add(total)),
                size(MAX_UPLOAD_BYTES_PER_CALLER)
            )));
        }
        if self.uploads.len() >= MAX_UPLOADS || all_bytes.saturating_add(total) > MAX_UPLOAD_BYTES {
            return Err(BlobError::Quota(format!(
                "the broker has {} unfinished uploads of {} in all, and takes at most {MAX_UPLOADS} uploads of {} in all: try again later",
                self.uploads.len(),
                size(all_bytes),
                size(MAX_UPLOAD_BYTES)
            )));
        }
        Ok(())
    }
}

/// The refusal of a blob the broker cannot write.
fn storage(e: std::io::Error) -> BlobError {
    BlobError::Storage(format!("cannot store the blob: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("loads-blobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn key(caller: &str, sha: &str) -> UploadKey {
        UploadKey {
            caller: caller.into(),
            sha256: sha.into(),
            upload: String::new(),
        }
    }

    fn parts(d: &Path) -> usize {
        std::fs::read_dir(d)
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".part"))
            .count()
    }

    #[test]
    fn blobs_upload_in_chunks_and_are_verified() {
        let d = dir("chunks");
        let mut u = Uploads::new(d.clone());
        let now = Instant::now();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let sha = crate::transport::sha256_hex(&data);
        let total = data.len() as u64;
        let k = || key("a", &sha);
        assert_eq!(u.put(k(), 0, total, &data[..4000], now), Ok(false));
        // Out of order: refused, and the upload is abandoned.
        assert!(u.put(k(), 8000, total, &data[8000..], now).is_err());
        assert_eq!(parts(&d), 0);
        assert_eq!(u.put(k(), 0, total, &data[..4000], now), Ok(false));
        assert_eq!(u.put(k(), 4000, total, &data[4000..8000], now), Ok(false));
        assert_eq!(u.put(k(), 8000, total, &data[8000..], now), Ok(true));
        assert_eq!(std::fs::read(d.join(&sha)).expect("stored"), data);
        assert_eq!(parts(&d), 0);
        // Beyond the announced size, or not the announced hash: refused.
        let other = "0".repeat(64);
        assert!(u.put(key("a", &other), 0, 5, &data[..10], now).is_err());
        let e = u
            .put(key("a", &other), 0, 3, b"abc", now)
            .expect_err("bad hash");
        assert!(e.to_string().contains("does not match"), "{e}");
        assert!(!d.join(&other).exists());
        assert!(u.put(key("a", "../x"), 0, 3, b"abc", now).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_uploads_of_one_blob_both_complete_and_never_replace_it() {
        let d = dir("concurrent");
        let mut u = Uploads::new(d.clone());
        let now = Instant::now();
        let data: Vec<u8> = (0..9_000u32).map(|i| (i % 241) as u8).collect();
        let sha = crate::transport::sha256_hex(&data);
        let total = data.len() as u64;
        for (a, b) in [(0, 3000), (3000, 6000)] {
            for c in ["a", "b"] {
                assert_eq!(
                    u.put(key(c, &sha), a, total, &data[a as usize..b], now),
                    Ok(false)
                );
            }
        }
        assert_eq!(parts(&d), 2, "one part file per upload");
        assert_eq!(
            u.put(key("a", &sha), 6000, total, &data[6000..], now),
            Ok(true)
        );
        // b's upload is dropped: its last chunk, whatever its bytes, finds the blob in place.
        assert_eq!(parts(&d), 0);
        assert_eq!(
            u.put(key("b", &sha), 6000, total, &[0u8; 3000], now),
            Ok(true)
        );
        assert_eq!(std::fs::read(d.join(&sha)).expect("stored"), data);
        assert!(u.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn quotas_refuse_new_uploads_and_stale_ones_expire() {
        let d = dir("quota");
        std::fs::write(d.join(format!("{}.part", "1".repeat(64))), "left over").expect("part");
        let mut u = Uploads::new(d.clone());
        assert_eq!(parts(&d), 0, "an earlier broker's part files are removed");
        let now = Instant::now();
        for i in 0..MAX_UPLOADS_PER_CALLER {
            assert_eq!(
                u.put(key("a", &format!("{i:064x}")), 0, 10, b"abc", now),
                Ok(false)
            );
        }
        let e = u
            .put(key("a", &"f".repeat(64)), 0, 10, b"abc", now)
            .expect_err("quota");
        assert_eq!(e.code(), "upload_quota");
        assert!(
            e.to_string().contains("at most 4 unfinished uploads"),
            "{e}"
        );
        // Restarting one of them takes no new place.
        assert_eq!(
            u.put(key("a", &format!("{:064x}", 0)), 0, 10, b"ab", now),
            Ok(false)
        );
        // Bytes.
        assert_eq!(
            u.put(key("b", &"e".repeat(64)), 0, MAX_BLOB, b"x", now),
            Ok(false)
        );
        assert_eq!(
            u.put(key("b", &"d".repeat(64)), 0, MAX_BLOB, b"x", now),
            Ok(false)
        );
        let e = u.put(key("b", &"c".repeat(64)), 0, 2, b"x", now);
        assert!(
            matches!(e, Err(BlobError::Quota(ref m)) if m.contains("at most 8 GiB")),
            "{e:?}"
        );
        // All callers together.
        for i in 0..MAX_UPLOADS {
            let _ = u.put(
                key(&format!("c{i}"), &format!("{i:064x}")),
                0,
                10,
                b"a",
                now,
            );
        }
        assert_eq!(u.len(), MAX_UPLOADS);
        let e = u
            .put(key("z", &"b".repeat(64)), 0, 10, b"a", now)
            .expect_err("full");
        assert!(e.to_string().contains("at most 32 uploads"), "{e}");
        // Silent uploads expire, their part files with them.
        assert_eq!(parts(&d), MAX_UPLOADS);
        u.expire(now + STALE_UPLOAD + Duration::from_secs(1));
        assert!(u.is_empty());
        assert_eq!(parts(&d), 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
