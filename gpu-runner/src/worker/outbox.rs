//! The runner's outbox: reports that could not reach the server, kept on disk in order (one
//! JSON file per report, written atomically) until a flush delivers them.
//!
//! Replaying a report is safe: metric points and log lines are idempotent on the server, and a
//! report whose lease is gone is refused (409) and dropped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::AtomicFile;
use crate::{Error, Result};

/// One buffered report: the endpoint path under `/api/v1` and its JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub path: String,
    pub body: serde_json::Value,
}

/// The outbox directory; entries are `<seq>.json`, delivered in `seq` order.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    next: u64,
}

fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`, keeping what an earlier process left there.
    pub fn open(dir: &Path) -> Result<Outbox> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut outbox = Outbox {
            dir: dir.to_path_buf(),
            next: 0,
        };
        outbox.next = outbox.entries()?.last().map_or(0, |(s, _)| s + 1);
        Ok(outbox)
    }

    /// The buffered entries, oldest first.
    pub fn entries(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let path = entry.map_err(|e| Error::io(&self.dir, e))?.path();
            if let Some(seq) = seq_of(&path) {
                out.push((seq, path));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.entries()?.is_empty())
    }

    /// Appends a report after every buffered one.
    pub fn push(&mut self, pending: &Pending) -> Result<()> {
        let path = self.dir.join(format!("{:012}.json", self.next));
        let mut file = AtomicFile::create(&path)?;
        serde_json::to_writer(&mut file, pending)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        file.commit()?;
        self.next += 1;
        Ok(())
    }

    /// Reads one buffered entry; an unreadable one (e.g. from a crashed disk) is an error
    /// naming the file.
    pub fn read(path: &Path) -> Result<Pending> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::input(path, 1, "<entry>", e.to_string()))
    }

    /// Removes a delivered (or refused) entry.
    pub fn remove(path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(i: i64) -> Pending {
        Pending {
            path: format!("/jobs/{i}/metrics"),
            body: serde_json::json!({ "i": i }),
        }
    }

    #[test]
    fn entries_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        for i in 0..12 {
            outbox.push(&pending(i)).unwrap();
        }
        let first = outbox.entries().unwrap()[0].1.clone();
        Outbox::remove(&first).unwrap();
        let mut reopened = Outbox::open(dir.path()).unwrap();
        reopened.push(&pending(12)).unwrap();
        let read: Vec<Pending> = reopened
            .entries()
            .unwrap()
            .iter()
            .map(|(_, p)| Outbox::read(p).unwrap())
            .collect();
        assert_eq!(read, (1..13).map(pending).collect::<Vec<_>>());
    }
}
