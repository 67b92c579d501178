//! Cheap content identity: a path's hash is computed once per state of its files (size,
//! modification and status-change times, device and inode) and remembered, so a 16 GB teacher directory is read once, not by every stage job.
//!
//! The memo is per process; a runner also keeps it in a file of its workdir
//! ([`remember_in`]), so a restarted runner does not read its models again. A path is hashed
//! anew when any file under it is added, removed, resized or touched.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::io::AtomicFile;
use crate::{Error, Result};

/// One file under a hashed path: its path relative to it, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    rel: String,
    size: u64,
    mtime_ns: i128,
    /// The device and inode (0 off Unix): a file replaced by a rename is another file even
    /// within one modification-time tick.
    #[serde(default)]
    inode: (u64, u64),
    /// The status-change time (0 off Unix), which no tool can set back: an in-place rewrite
    /// that restores size and modification time still changes it.
    #[serde(default)]
    ctime_ns: i128,
}

/// A remembered hash and the stamps of the files it was computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamps: Vec<FileStamp>,
    hash: String,
}

#[derive(Default)]
struct Memo {
    entries: HashMap<PathBuf, Entry>,
    file: Option<PathBuf>,
}

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(Mutex::default)
}

fn lock() -> Result<std::sync::MutexGuard<'static, Memo>> {
    memo()
        .lock()
        .map_err(|_| Error::Other("identity memo lock poisoned".into()))
}

/// Keeps the memo in `file` from now on (read now if it exists; an unreadable file is ignored
/// and rewritten).
pub fn remember_in(file: &Path) -> Result<()> {
    let loaded = load(file);
    let mut m = lock()?;
    for (path, entry) in loaded {
        m.entries.entry(path).or_insert(entry);
    }
    m.file = Some(file.to_path_buf());
    Ok(())
}

/// The entries of directory `dir`, sorted by name.
pub fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let mut entries: Vec<(OsString, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| (e.file_name(), e.path())))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

fn stamps(path: &Path, rel: &Path, out: &mut Vec<FileStamp>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        for (name, entry) in sorted_entries(path)? {
            stamps(&entry, &rel.join(name), out)?;
        }
        return Ok(());
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let (inode, ctime_ns) = {
        use std::os::unix::fs::MetadataExt;
        (
            (meta.dev(), meta.ino()),
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        )
    };
    #[cfg(not(unix))]
    let (inode, ctime_ns) = ((0, 0), 0);
    out.push(FileStamp {
        rel: rel.to_string_lossy().into_owned(),
        size: meta.len(),
        mtime_ns,
        inode,
        ctime_ns,
    });
    Ok(())
}

/// The hash of `path` by `compute`, reused while no file under `path` changed its size or
/// modification time.
pub fn cached(path: &Path, compute: fn(&Path) -> Result<String>) -> Result<String> {
    let key = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut now = Vec::new();
    stamps(&key, Path::new(""), &mut now)?;
    if let Some(e) = lock()?.entries.get(&key).filter(|e| e.stamps == now) {
        return Ok(e.hash.clone());
    }
    let hash = compute(&key)?;
    let mut after = Vec::new();
    stamps(&key, Path::new(""), &mut after)?;
    if after != now {
        // Written to while we read it: the hash describes no single state; don't remember it.
        return Ok(hash);
    }
    let mut m = lock()?;
    m.entries.insert(
        key,
        Entry {
            stamps: now,
            hash: hash.clone(),
        },
    );
    if let Some(file) = m.file.clone() {
        if let Err(e) = save(&file, &m.entries) {
            tracing::warn!("identity memo not saved: {e}");
        }
    }
    Ok(hash)
}

fn load(file: &Path) -> HashMap<PathBuf, Entry> {
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save(file: &Path, entries: &HashMap<PathBuf, Entry>) -> Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut out = AtomicFile::create(file)?;
    serde_json::to_writer(&mut out, entries)
        .map_err(|e| Error::Other(format!("{}: {e}", file.display())))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    /// Reads by [`counting`]; only the first test hashes through it (tests run in parallel).
    static READS: AtomicUsize = AtomicUsize::new(0);

    fn counting(path: &Path) -> Result<String> {
        READS.fetch_add(1, Ordering::SeqCst);
        crate::pipeline::manifest::hash_contents(path)
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(t).unwrap();
    }

    #[test]
    fn a_directory_is_read_once_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        let weights = model.join("model.safetensors");
        std::fs::write(&weights, "aaaa").unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        set_mtime(&weights, t0);

        let before = READS.load(Ordering::SeqCst);
        let h1 = cached(&model, counting).unwrap();
        assert_eq!(cached(&model, counting).unwrap(), h1);
        assert_eq!(
            READS.load(Ordering::SeqCst) - before,
            1,
            "the second call reads nothing"
        );

        // Rewritten in place with its size and modification time restored: the status-change
        // time still moved (past the file system clock's tick), so it is read again and the
        // new content seen.
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(&weights, "bbbb").unwrap();
        set_mtime(&weights, t0);
        let h2 = cached(&model, counting).unwrap();
        assert_ne!(h2, h1);
        assert_eq!(
            h2,
            crate::pipeline::manifest::hash_contents(&model).unwrap()
        );
        // So does a new file.
        std::fs::write(model.join("extra"), "x").unwrap();
        assert_ne!(cached(&model, counting).unwrap(), h2);
        assert_eq!(READS.load(Ordering::SeqCst) - before, 3);
    }

    #[test]
    fn the_memo_survives_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("train.jsonl");
        std::fs::write(&data, "{}\n").unwrap();
        let h = cached(&data, crate::pipeline::manifest::hash_contents).unwrap();
        let key = std::fs::canonicalize(&data).unwrap();
        let file = dir.path().join("state/identity.json");
        save(&file, &lock().unwrap().entries).unwrap();
        assert_eq!(load(&file)[&key].hash, h);
        assert!(load(&dir.path().join("missing.json")).is_empty());
    }
}
