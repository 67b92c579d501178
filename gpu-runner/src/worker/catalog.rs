//! What a runner offers the launch form: the model directories and data files under the folders
//! given with `gpu-runner work --catalog DIR`, reported at registration.

use std::path::{Path, PathBuf};

use distillery_api::RunnerCatalog;

use crate::error::{Error, Result};

/// How deep below each catalog folder to look (the folder itself is depth 0).
const MAX_DEPTH: usize = 2;

/// Model directories (those holding a `config.json`) and MTEB reranking files (`.jsonl`,
/// `.jsonl.gz`) at most [`MAX_DEPTH`] levels below each folder, as absolute paths, sorted.
pub fn scan(folders: &[PathBuf]) -> Result<RunnerCatalog> {
    let mut catalog = RunnerCatalog::default();
    for folder in folders {
        let root = folder.canonicalize().map_err(|e| Error::io(folder, e))?;
        walk(&root, 0, &mut catalog)?;
    }
    catalog.models.sort();
    catalog.models.dedup();
    catalog.datasets.sort();
    catalog.datasets.dedup();
    Ok(catalog)
}

fn walk(dir: &Path, depth: usize, catalog: &mut RunnerCatalog) -> Result<()> {
    if dir.join("config.json").is_file() {
        catalog.models.push(dir.display().to_string());
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, catalog)?;
        } else if is_dataset(&path) {
            catalog.datasets.push(path.display().to_string());
        }
    }
    Ok(())
}

fn is_dataset(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.is_file() && (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_model_dirs_and_data_files_but_not_inside_models() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for model in ["student", "zoo/teacher"] {
            std::fs::create_dir_all(root.join(model).join("nested")).unwrap();
            std::fs::write(root.join(model).join("config.json"), "{}").unwrap();
            // A model's own files are not offered as datasets.
            std::fs::write(root.join(model).join("nested/x.jsonl"), "").unwrap();
        }
        std::fs::create_dir_all(root.join("data/deep/deeper")).unwrap();
        for file in ["data/train.jsonl.gz", "data/test.jsonl", "data/notes.txt"] {
            std::fs::write(root.join(file), "").unwrap();
        }
        // Below the depth limit: not scanned.
        std::fs::write(root.join("data/deep/deeper/far.jsonl"), "").unwrap();

        let catalog = scan(&[root.to_path_buf()]).unwrap();
        let root = root.canonicalize().unwrap();
        let abs = |p: &str| root.join(p).display().to_string();
        assert_eq!(catalog.models, vec![abs("student"), abs("zoo/teacher")]);
        assert_eq!(
            catalog.datasets,
            vec![abs("data/test.jsonl"), abs("data/train.jsonl.gz")]
        );
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let err = scan(&[PathBuf::from("/no/such/catalog")]).unwrap_err();
        assert!(err.to_string().contains("/no/such/catalog"), "{err}");
    }
}
