//! A content-hash cache of teacher scores, so re-running a job or scoring an overlapping file
//! computes only new pairs.
//!
//! Each score is keyed on SHA-256 over the teacher identity (config, safetensors headers and
//! weights' content hash),
//! the prompt variant, instruction, max length, dtype, query and passage. The cache is an
//! append-only JSON-lines file `{"key": hex, "score": f64}`; a torn last line from a crash is
//! ignored when it is read back.
//!
//! A runner's cache is a directory ([`ScoreCache::open_dir`]): every opening reads all its files
//! and appends to a file of its own, so runners sharing a workdir never write the same file.
//! Once it holds more than [`COMPACT_AFTER`] files, an opening merges those of processes that
//! are gone into one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Everything besides the pair that decides a score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreSetting {
    /// The teacher's identity ([`crate::teacher::Teacher::identity`]).
    pub teacher: String,
    /// `official` or `seed-compat`.
    pub prompt: String,
    pub instruction: String,
    pub max_length: usize,
    /// `f32`, `bf16` or `f16`.
    pub dtype: String,
}

impl ScoreSetting {
    /// The cache key of one (query, passage) pair under this setting.
    pub fn key(&self, query: &str, passage: &str) -> String {
        let mut h = Sha256::new();
        let max_length = self.max_length.to_string();
        for field in [
            self.teacher.as_str(),
            self.prompt.as_str(),
            self.instruction.as_str(),
            max_length.as_str(),
            self.dtype.as_str(),
            query,
            passage,
        ] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheLine {
    key: String,
    score: f64,
}

/// Where a job's score cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAt {
    /// One file, read and appended to (`gpu-runner score --cache`).
    File(PathBuf),
    /// A directory of files: all read, a new one appended to (a runner's cross-run cache).
    Dir(PathBuf),
}

/// The scores known so far plus an append handle for new ones.
pub struct ScoreCache {
    path: PathBuf,
    scores: HashMap<String, f64>,
    writer: BufWriter<File>,
    /// Entries appended by this handle.
    written: usize,
    /// Keys this handle added (not found in the files at open).
    fresh: std::collections::HashSet<String>,
    /// Remove the file on drop if nothing was appended (a directory cache's own file).
    remove_if_unused: bool,
}

impl Drop for ScoreCache {
    fn drop(&mut self) {
        if self.remove_if_unused && self.written == 0 {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl ScoreCache {
    /// Opens (or creates) the cache file at `path` and reads every complete entry.
    pub fn open(path: &Path) -> Result<ScoreCache> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let scores = read_entries(path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        drop_torn_tail(path, &file)?;
        let writer = BufWriter::new(file);
        Ok(ScoreCache {
            path: path.to_path_buf(),
            scores,
            writer,
            written: 0,
            fresh: Default::default(),
            remove_if_unused: false,
        })
    }

    /// Opens the cache `at` names.
    pub fn open_at(at: &CacheAt) -> Result<ScoreCache> {
        match at {
            CacheAt::File(path) => ScoreCache::open(path),
            CacheAt::Dir(dir) => ScoreCache::open_dir(dir),
        }
    }

    /// Opens the directory cache `dir`: reads every `*.jsonl` file in it (other writers'
    /// incomplete last lines are skipped) and appends new entries to a file of its own.
    pub fn open_dir(dir: &Path) -> Result<ScoreCache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut scores = HashMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(dir, e))?;
        files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
        files.sort();
        // The runner's cache is an optimisation nobody asked for by name: a damaged file is
        // left out with a warning instead of stopping every scoring job on the runner.
        let mut readable = Vec::new();
        for file in &files {
            match read_entries(file) {
                Ok(entries) => {
                    scores.extend(entries);
                    readable.push(file.clone());
                }
                Err(e) => tracing::warn!("score cache file left out: {e}"),
            }
        }
        if readable.len() > COMPACT_AFTER {
            if let Err(e) = compact(dir, &readable) {
                tracing::warn!("score cache not compacted: {e}");
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{}-{nanos}-{n}.jsonl", std::process::id()));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(ScoreCache {
            path,
            scores,
            writer: BufWriter::new(file),
            written: 0,
            fresh: Default::default(),
            remove_if_unused: true,
        })
    }

    /// The cached score of `key`, if any.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.scores.get(key).copied()
    }

    /// The cached score of `key` as the cache stood when it was opened: what a job looks up,
    /// so that which pairs come from the cache does not depend on how far its scoring got
    /// when a later window was prepared.
    pub fn get_loaded(&self, key: &str) -> Option<f64> {
        if self.fresh.contains(key) {
            return None;
        }
        self.get(key)
    }

    /// Number of cached scores.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the cache holds no scores.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Records a new score (buffered until [`ScoreCache::flush`]).
    pub fn insert(&mut self, key: String, score: f64) -> Result<()> {
        let line = serde_json::to_string(&CacheLine {
            key: key.clone(),
            score,
        })
        .map_err(|e| Error::Other(format!("cannot encode a cache entry: {e}")))?;
        writeln!(self.writer, "{line}").map_err(|e| Error::io(&self.path, e))?;
        if !self.scores.contains_key(&key) {
            self.fresh.insert(key.clone());
        }
        self.scores.insert(key, score);
        self.written += 1;
        Ok(())
    }

    /// Writes buffered entries to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// A directory cache with more files than this is compacted when opened.
pub const COMPACT_AFTER: usize = 32;

/// Whether the process that named a cache file `<pid>-…` may still append to it (a file of
/// another name, or of a process that is gone, is not written any more).
fn writer_alive(file: &Path) -> bool {
    let pid = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if pid == std::process::id() => true,
        Some(pid) => {
            Path::new("/proc").is_dir() && Path::new("/proc").join(pid.to_string()).exists()
        }
        None => false,
    }
}

/// Merges the files of `dir` that no live process writes into one `compact-<nanos>.jsonl`
/// (written to a temporary file and renamed), then removes them.
fn compact(dir: &Path, files: &[PathBuf]) -> Result<()> {
    if !Path::new("/proc").is_dir() {
        return Ok(()); // no way to tell live writers from gone ones
    }
    let done: Vec<&PathBuf> = files.iter().filter(|f| !writer_alive(f)).collect();
    if done.len() < 2 {
        return Ok(());
    }
    let mut merged = HashMap::new();
    for f in &done {
        merged.extend(read_entries(f)?);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let out = dir.join(format!("compact-{nanos}.jsonl"));
    let mut file = crate::io::AtomicFile::create(&out)?;
    for (key, score) in &merged {
        let line = serde_json::to_string(&CacheLine {
            key: key.clone(),
            score: *score,
        })
        .map_err(|e| Error::Other(format!("cannot encode a cache entry: {e}")))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&out, e))?;
    }
    file.commit()?;
    for f in done {
        std::fs::remove_file(f).map_err(|e| Error::io(f, e))?;
    }
    tracing::info!(
        "score cache compacted: {} entries in {}",
        merged.len(),
        out.display()
    );
    Ok(())
}

/// Cuts a torn last line (a crash mid-write) so that new entries start on a fresh line.
fn drop_torn_tail(path: &Path, file: &File) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.last().is_some_and(|b| *b != b'\n') {
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        file.set_len(keep as u64).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn read_entries(path: &Path) -> Result<HashMap<String, f64>> {
    let mut scores = HashMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scores),
        Err(e) => return Err(Error::io(path, e)),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(path, e))?;
    let n_lines = lines.len();
    for (idx, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<CacheLine>(line) {
            Ok(entry) if entry.score.is_finite() => {
                scores.insert(entry.key, entry.score);
            }
            Ok(_) => return Err(Error::input(path, idx + 1, "score", "not a finite number")),
            // A crash can tear only the last line; anything earlier is corruption.
            Err(_) if idx + 1 == n_lines => {}
            Err(e) => return Err(Error::input(path, idx + 1, "key", e.to_string())),
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting() -> ScoreSetting {
        ScoreSetting {
            teacher: "abc".into(),
            prompt: "official".into(),
            instruction: "inst".into(),
            max_length: 8192,
            dtype: "f32".into(),
        }
    }

    #[test]
    fn key_depends_on_every_field() {
        let base = setting();
        let k = base.key("q", "p");
        assert_eq!(k, setting().key("q", "p"));
        assert_ne!(k, base.key("q", "p2"));
        assert_ne!(k, base.key("qp", ""));
        let variants = [
            ScoreSetting {
                teacher: "abd".into(),
                ..setting()
            },
            ScoreSetting {
                prompt: "seed-compat".into(),
                ..setting()
            },
            ScoreSetting {
                instruction: "other".into(),
                ..setting()
            },
            ScoreSetting {
                max_length: 512,
                ..setting()
            },
            ScoreSetting {
                dtype: "bf16".into(),
                ..setting()
            },
        ];
        for v in variants {
            assert_ne!(k, v.key("q", "p"), "{v:?}");
        }
    }

    #[test]
    fn entries_survive_reopen_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = ScoreCache::open(&path).unwrap();
        c.insert("a".into(), 1.5).unwrap();
        c.insert("b".into(), -2.0).unwrap();
        c.flush().unwrap();
        drop(c);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"c\",\"sc").unwrap();
        drop(f);
        let mut c = ScoreCache::open(&path).unwrap();
        assert_eq!(
            (c.get("a"), c.get("b"), c.get("c")),
            (Some(1.5), Some(-2.0), None)
        );
        c.insert("d".into(), 0.25).unwrap();
        c.flush().unwrap();
        drop(c);
        let c = ScoreCache::open(&path).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("d"), Some(0.25));
    }

    #[test]
    fn corruption_before_the_last_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "garbage\n{\"key\":\"a\",\"score\":1.0}\n").unwrap();
        let err = ScoreCache::open(&path).err().unwrap().to_string();
        assert!(err.contains(":1:"), "{err}");
    }

    #[test]
    fn a_directory_cache_reads_every_file_and_writes_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let at = CacheAt::Dir(dir.path().join("cache"));
        let mut a = ScoreCache::open_at(&at).unwrap();
        let mut b = ScoreCache::open_at(&at).unwrap();
        a.insert("x".into(), 1.0).unwrap();
        b.insert("y".into(), 2.0).unwrap();
        a.flush().unwrap();
        b.flush().unwrap();
        drop((a, b));
        let unused = ScoreCache::open_at(&at).unwrap();
        assert_eq!((unused.get("x"), unused.get("y")), (Some(1.0), Some(2.0)));
        drop(unused);
        let files = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
        assert_eq!(files, 2, "a handle that wrote nothing leaves no file");

        // A damaged file is left out; the others still serve.
        std::fs::write(
            dir.path().join("cache/damaged.jsonl"),
            "not json\n{\"key\": \"z\", \"score\": 3.0}\n",
        )
        .unwrap();
        let c = ScoreCache::open_at(&at).unwrap();
        assert_eq!((c.get("x"), c.get("z")), (Some(1.0), None));
    }

    #[test]
    fn a_directory_of_many_finished_files_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        // Files of a process id that cannot be alive (above the kernel's pid limit).
        for i in 0..40 {
            let line = format!("{{\"key\": \"k{i}\", \"score\": {i}.5}}\n");
            std::fs::write(cache.join(format!("4294967000-{i}-0.jsonl")), line).unwrap();
        }
        let at = CacheAt::Dir(cache.clone());
        let c = ScoreCache::open_at(&at).unwrap();
        assert_eq!((c.len(), c.get("k39")), (40, Some(39.5)));
        drop(c);
        let names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("compact-"));
        let again = ScoreCache::open_at(&at).unwrap();
        assert_eq!((again.len(), again.get("k0")), (40, Some(0.5)));
    }
}
