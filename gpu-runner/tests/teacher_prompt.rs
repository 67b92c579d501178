//! The teacher prompt against the real Qwen3 tokenizer: pinned ids and concatenation equivalence.

mod teacher_support;

use gpu_runner::teacher::prompt::{
    encode, middle_text, prefix_text, PromptBuilder, PromptVariant, SpecialTokens,
    DEFAULT_INSTRUCTION, SUFFIX_TEXT,
};

/// `<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n`, checked with HF `tokenizers`.
const PREFIX_IDS: [u32; 39] = [
    151644, 8948, 198, 60256, 3425, 279, 11789, 20027, 279, 8502, 3118, 389, 279, 11361, 323, 279,
    758, 1235, 3897, 13, 7036, 429, 279, 4226, 646, 1172, 387, 330, 9693, 1, 476, 330, 2152, 3263,
    151645, 198, 151644, 872, 198,
];
/// `<|im_end|>`, `\n`, `<|im_start|>`, `assistant`, `\n`, `<think>`, `\n\n`, `</think>`, `\n\n`.
const SUFFIX_IDS: [u32; 9] = [151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271];

const SAMPLES: [(&str, &str); 6] = [
    (
        "How do I reverse a list in Python?",
        "Use list.reverse() or reversed(lst).",
    ),
    (
        "如何在Python中读取文件？",
        "使用 open() 函数并配合 with 语句。",
    ),
    ("Emoji 😀 in Java", "s.codePointAt(i)\n\nhandles surrogates"),
    ("", ""),
    ("  spaces  ", "\ttabs and trailing newline\n"),
    ("3 ways to merge dicts", "(a | b) or {**a, **b}"),
];

fn builder(variant: PromptVariant, max_length: usize) -> PromptBuilder {
    PromptBuilder::new(
        teacher_support::tokenizer(),
        variant,
        DEFAULT_INSTRUCTION,
        max_length,
    )
    .unwrap()
}

#[test]
fn special_tokens_have_the_reference_ids() {
    let s = SpecialTokens::check(&teacher_support::tokenizer()).unwrap();
    assert_eq!(
        (s.im_start, s.im_end, s.think, s.end_think, s.yes, s.no),
        (151644, 151645, 151667, 151668, 9693, 2152)
    );
}

#[test]
fn prefix_and_suffix_ids_are_pinned() {
    let b = builder(PromptVariant::Official, 8192);
    assert_eq!(b.prefix_ids(), PREFIX_IDS);
    assert_eq!(b.suffix_ids(), SUFFIX_IDS);
    assert_eq!(b.shared_ids().len(), 39 + 21);
    assert_eq!(&b.shared_ids()[..39], PREFIX_IDS);
}

#[test]
fn encoding_the_whole_prompt_equals_the_concatenation() {
    let tok = teacher_support::tokenizer();
    let b = builder(PromptVariant::Official, 8192);
    for (q, d) in SAMPLES {
        let middle = middle_text(DEFAULT_INSTRUCTION, q, d);
        let whole = encode(&tok, &format!("{}{middle}{SUFFIX_TEXT}", prefix_text())).unwrap();
        let built = b.build(q, d).unwrap();
        assert_eq!(built, whole, "{q:?} / {d:?}");
        let rest = b.build_rest(q, d).unwrap();
        assert_eq!([b.shared_ids(), &rest[..]].concat(), built);
    }
}

#[test]
fn seed_compat_duplicates_the_turn_end() {
    let tok = teacher_support::tokenizer();
    let b = builder(PromptVariant::SeedCompat, 8192);
    for (q, d) in SAMPLES {
        let middle = middle_text(DEFAULT_INSTRUCTION, q, d);
        let text = format!("{}{middle}<|im_end|>\n{SUFFIX_TEXT}", prefix_text());
        assert_eq!(b.build(q, d).unwrap(), encode(&tok, &text).unwrap());
    }
}

#[test]
fn official_truncates_only_the_middle() {
    let long_doc = "word ".repeat(500);
    let b = builder(PromptVariant::Official, 100);
    let ids = b.build("q", &long_doc).unwrap();
    assert_eq!(ids.len(), 100);
    assert_eq!(&ids[..39], PREFIX_IDS);
    assert_eq!(&ids[91..], SUFFIX_IDS);
    let short = b.build("q", "short").unwrap();
    assert!(short.len() < 100);
    assert_eq!(
        short,
        builder(PromptVariant::Official, 8192)
            .build("q", "short")
            .unwrap()
    );
}

#[test]
fn seed_compat_cuts_the_rendered_prompt_then_appends_the_suffix() {
    let long_doc = "word ".repeat(500);
    let ids = builder(PromptVariant::SeedCompat, 100)
        .build("q", &long_doc)
        .unwrap();
    assert_eq!(ids.len(), 109);
    assert_eq!(&ids[100..], SUFFIX_IDS);
    assert_ne!(ids[98..100], [151645, 198], "the rendered turn end was cut");
}

#[test]
fn too_small_max_length_is_a_clear_error() {
    let err = PromptBuilder::new(
        teacher_support::tokenizer(),
        PromptVariant::Official,
        DEFAULT_INSTRUCTION,
        50,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--max-length 50"), "{err}");
}
