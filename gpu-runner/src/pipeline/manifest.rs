//! Content hashes of stage inputs and the run's `manifest.json`.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The sha256 (hex) of a file, or of a directory's files (names and contents, sorted by name,
/// recursively). Remembered per process by [`super::identity`]: a path whose files all keep
/// their size and modification time is not read again.
pub fn hash_path(path: &Path) -> Result<String> {
    super::identity::cached(path, hash_contents)
}

/// [`hash_path`] without the memo: reads every byte.
pub fn hash_contents(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    feed(&mut hasher, path, Path::new(""))?;
    Ok(hex::encode(hasher.finalize()))
}

fn feed(hasher: &mut Sha256, path: &Path, rel: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        for (name, entry) in super::identity::sorted_entries(path)? {
            feed(hasher, &entry, &rel.join(name))?;
        }
        return Ok(());
    }
    hasher.update(rel.to_string_lossy().as_bytes());
    hasher.update([0]);
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

/// The sha256 (hex) of a stage's identity: its name, parameters and input hashes.
pub fn stage_key(name: &str, params: &str, input_hashes: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once(name)
        .chain([params])
        .chain(input_hashes.iter().copied())
    {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The git commit this binary was built from (`-dirty` with uncommitted changes).
pub const GIT_COMMIT: &str = env!("DISTILLERY_GIT_COMMIT");
/// candle's version in the lock file.
pub const CANDLE_VERSION: &str = env!("DISTILLERY_CANDLE_VERSION");

/// What `manifest.json` records about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// gpu-runner's version.
    pub runner_version: String,
    /// The git commit gpu-runner was built from.
    pub git_commit: String,
    /// candle's version.
    pub candle_version: String,
    /// The device the stages ran on.
    pub device: String,
    /// The run configuration.
    pub config: distillery_api::RunConfig,
    /// sha256 of the teacher directory (empty for bm25).
    pub teacher_hash: String,
    /// sha256 of the student directory.
    pub student_hash: String,
    /// sha256 of the training data.
    pub train_data_hash: String,
    /// sha256 of the test data.
    pub test_data_hash: String,
    /// Every stage with its key, output directory and whether it was reused.
    pub stages: Vec<StageRecord>,
}

/// One stage of the run in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage kind.
    pub stage: distillery_api::StageKind,
    /// Its content key.
    pub key: String,
    /// Its output directory, relative to the run directory.
    pub dir: String,
    /// Whether an earlier identical stage's outputs were reused.
    pub reused: bool,
    /// What the stage's work measured (for a reused stage: when it ran, if it recorded it).
    #[serde(default)]
    pub stats: Option<distillery_api::StageStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_hash_depends_on_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let h1 = hash_path(dir.path()).unwrap();
        assert_eq!(h1, hash_path(dir.path()).unwrap());
        std::fs::write(dir.path().join("a"), "y").unwrap();
        let h2 = hash_path(dir.path()).unwrap();
        assert_ne!(h1, h2);
        std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert_ne!(h2, hash_path(dir.path()).unwrap());
        assert_ne!(stage_key("a", "p", &["h"]), stage_key("a", "p", &["g"]));
    }
}
