//! A content-hash cache of teacher scores, so re-running a job or scoring an overlapping file
//! computes only new pairs.
//!
//! Each score is keyed on SHA-256 over the teacher identity (config plus safetensors headers),
//! the prompt variant, instruction, max length, dtype, query and passage. The cache is an
//! append-only JSON-lines file `{"key": hex, "score": f64}`; a torn last line from a crash is
//! ignored when it is read back.
//!
//! A runner's cache is a directory ([`ScoreCache::open_dir`]): every opening reads all its files
//! and appends to a file of its own, so runners sharing a workdir never write the same file.

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
    /// Hex hash of the teacher's config and safetensors headers.
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
        for file in &files {
            scores.extend(read_entries(file)?);
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
            remove_if_unused: true,
        })
    }

    /// The cached score of `key`, if any.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.scores.get(key).copied()
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
        self.scores.insert(key, score);
        self.written += 1;
        Ok(())
    }

    /// Writes buffered entries to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io(&self.path, e))
    }
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
    }
}
