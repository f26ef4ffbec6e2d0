//! The agent's side of the blob store: the blobs it fetches from the broker into its cache.
//!
//! Data enters as the broker's answers to the agent's `need_binary` requests
//! ([`FromAgent::NeedBinary`], one per chunk, asked for by [`Downloads::want`] and then from
//! the offset [`Chunk::More`] names): [`Downloads::receive`] writes each chunk to a part file of
//! this agent's own (`<sha>.<pid>-<n>.part`: agents on one host may share a cache), hashes it,
//! and once all the bytes are in and hash to the SHA-256, makes the file executable and renames
//! it to `<sha>` in the cache.
//!
//! Data leaves as the files the agent's workers use (read by path, [`Downloads::path`]), each
//! hashed again before ([`verify`](super::verify)). The cache keeps the most recently used blobs
//! ([`Downloads::prune`]).
//!
//! [`FromAgent::NeedBinary`]: crate::transport::FromAgent::NeedBinary

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::super::{modified, rand_u16};
use super::{BlobDir, BlobError, Part, Unfinished, chunk_end, is_part};

/// What a received chunk leads to.
#[derive(Debug)]
pub enum Chunk {
    /// Ask for the bytes from this offset on.
    More(u64),
    /// Complete, verified and cached here ([`Downloads::path`] finds it).
    Done,
    /// A chunk of a download this agent is not at (a duplicate answer): ignored.
    Stale,
}

/// An agent's cache of blobs, and the blobs being received into it, by SHA-256.
pub struct Downloads {
    cache: BlobDir,
    parts: BTreeMap<String, Part>,
    /// The blobs asked for and not received yet (each is asked for once).
    asked: HashSet<String>,
}

/// The refusal of a blob the agent cannot write.
fn storage(e: std::io::Error) -> BlobError {
    BlobError::Storage(format!("cannot cache the test binary: {e}"))
}

impl Downloads {
    /// The blobs cached in `cache` (an existing directory), none being received.
    pub fn new(cache: PathBuf) -> Downloads {
        Downloads {
            cache: BlobDir::new(cache),
            parts: BTreeMap::new(),
            asked: HashSet::new(),
        }
    }

    /// Where the blob `sha` is cached; `None` when `sha` is not a SHA-256 in hex.
    pub fn path(&self, sha: &str) -> Option<PathBuf> {
        self.cache.path(sha)
    }

    /// Whether the blob `sha` is cached.
    pub fn has(&self, sha: &str) -> bool {
        self.cache.has(sha)
    }

    /// Whether the blob `sha` is to be asked for now: it is not cached, and not asked for yet
    /// (it counts as asked for from now on, until its download ends).
    pub fn want(&mut self, sha: &str) -> bool {
        !self.has(sha) && self.asked.insert(sha.to_owned())
    }

    /// Takes the chunk of `sha` at `offset` (of `total` bytes): appends it, and once complete
    /// verifies the SHA-256 and moves the file into the cache. Once the download ends (complete,
    /// or refused), the blob may be asked for again.
    pub fn receive(
        &mut self,
        sha: &str,
        offset: u64,
        total: u64,
        bytes: &[u8],
    ) -> Result<Chunk, BlobError> {
        let Some(path) = self.path(sha) else {
            return self.end(sha, Err(BlobError::BadChunk("invalid binary hash".into())));
        };
        if offset == 0 && !self.parts.contains_key(sha) {
            // A name of our own: agents on one host may share the cache.
            let tag = format!("{}-{:04x}", std::process::id(), rand_u16());
            match self.cache.part(sha, &tag) {
                Ok(part) => self.parts.insert(sha.to_owned(), part),
                Err(e) => return self.end(sha, Err(storage(e))),
            };
        }
        let Some(part) = self.parts.get_mut(sha).filter(|p| p.received == offset) else {
            return Ok(Chunk::Stale);
        };
        let (grown, fits) = chunk_end(offset, bytes.len(), total);
        let written = if fits {
            part.append(bytes).map_err(storage)
        } else {
            Err(BlobError::BadChunk(format!(
                "the test binary {sha} came in chunks that do not add up to its size {total}"
            )))
        };
        if written.is_ok() && grown < total {
            return Ok(Chunk::More(grown));
        }
        let result = match (self.parts.remove(sha), written) {
            (None, _) => Err(BlobError::Storage("download vanished".into())),
            (Some(part), Err(e)) => {
                part.discard();
                Err(e)
            }
            (Some(part), Ok(())) => match part.finish(sha, &path, Some(0o755)) {
                Ok(()) => Ok(Chunk::Done),
                Err(Unfinished::Mismatch) => Err(BlobError::BadChunk(format!(
                    "the test binary received does not match its SHA-256 {sha}"
                ))),
                Err(Unfinished::Io(e)) => Err(storage(e)),
            },
        };
        self.end(sha, result)
    }

    /// The end of the download of `sha`, with its `result`: the blob may be asked for again.
    fn end(&mut self, sha: &str, result: Result<Chunk, BlobError>) -> Result<Chunk, BlobError> {
        self.asked.remove(sha);
        result
    }

    /// Removes all but the `keep` most recently used blobs of the cache, never those for which
    /// `needed` is true, and part files left by downloads that died more than an hour ago.
    pub fn prune(&self, keep: usize, needed: impl Fn(&str) -> bool) {
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let mut blobs = Vec::new();
        for (name, path) in self.cache.entries() {
            if is_part(&name) {
                if modified(&path) < hour_ago {
                    let _ = std::fs::remove_file(&path);
                }
            } else if self.path(&name).is_some() && !needed(&name) {
                blobs.push((modified(&path), path));
            }
        }
        blobs.sort_by(|a, b| b.cmp(a));
        for (_, p) in blobs.into_iter().skip(keep) {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("loads-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn binaries_arrive_in_chunks_and_are_verified() {
        let cache = tmp("chunks");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let sha = crate::transport::sha256_hex(&data);
        let total = data.len() as u64;
        let mut d = Downloads::new(cache.clone());
        let mut offset = 0u64;
        let path = loop {
            let end = (offset as usize + 3000).min(data.len());
            match d
                .receive(&sha, offset, total, &data[offset as usize..end])
                .expect("chunk")
            {
                Chunk::More(next) => {
                    // A duplicate of the chunk just taken is ignored.
                    assert!(matches!(
                        d.receive(&sha, offset, total, &data[offset as usize..end]),
                        Ok(Chunk::Stale)
                    ));
                    offset = next;
                }
                Chunk::Done => break d.path(&sha).expect("cached"),
                Chunk::Stale => panic!("stale"),
            }
        };
        assert_eq!(std::fs::read(&path).expect("cached"), data);

        // Bytes that do not hash to the announced SHA-256 are refused and not cached.
        let other = "0".repeat(64);
        let e = match d.receive(&other, 0, 4, b"abcd") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted a wrong hash"),
        };
        assert!(e.contains("does not match"), "{e}");
        assert!(!cache.join(&other).exists());
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn old_blobs_are_pruned_but_not_needed_ones() {
        let cache = tmp("prune-cache");
        for i in 0..4u64 {
            let sha = format!("{i:064x}");
            std::fs::write(cache.join(&sha), "x").expect("blob");
            std::fs::File::options()
                .append(true)
                .open(cache.join(&sha))
                .and_then(|f| {
                    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000 + i))
                })
                .expect("mtime");
        }
        Downloads::new(cache.clone()).prune(1, |sha| sha == format!("{:064x}", 0));
        let mut left: Vec<String> = std::fs::read_dir(&cache)
            .expect("read")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{:064x}", 0), format!("{:064x}", 3)]);
        let _ = std::fs::remove_dir_all(&cache);
    }
}
