//! The demo dataset: synthetic, seeded, redistributable reranking data in MTEB format.
//!
//! Every word comes from the tiny student tokenizer's whole-word vocabulary
//! ([`crate::student::new_model::WORDS`]), split into a few stop words and `topics` disjoint
//! topic vocabularies. A query draws `query_words` words of one topic. Its positives repeat
//! most of those words among other words of the topic; its hard negatives are about the same
//! topic but share at most one query word; its easy negatives are about other topics. Relevance
//! is thus carried by lexical overlap, which a BM25 teacher sees and a small cross-encoder can
//! learn from the teacher's triplets. Nothing here is real text: it only exercises the
//! pipeline end to end with an honest held-out measurement.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use crate::data::Sample;
use crate::io::AtomicFile;
use crate::jsonl::write_str;
use crate::student::new_model::WORDS;
use crate::{Error, Result};

/// Stop words mixed into every text.
const STOP: usize = 14;

/// Sizes of the demo dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Queries of the training split.
    pub train_queries: usize,
    /// Queries of the held-out test split.
    pub test_queries: usize,
    /// Positives per query.
    pub positives: usize,
    /// Same-topic (hard) negatives per query.
    pub hard_negatives: usize,
    /// Other-topic (easy) negatives per query.
    pub easy_negatives: usize,
    /// Seed of every draw.
    pub seed: u64,
    /// Texts of StackOverflow title length (queries and passages 2–25 words, mode 7) instead
    /// of the demo's short ones: the shape of the reference data set, for benchmarks.
    pub title_lengths: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            train_queries: 240,
            test_queries: 80,
            positives: 2,
            hard_negatives: 3,
            easy_negatives: 3,
            seed: 7,
            title_lengths: false,
        }
    }
}

impl DemoOptions {
    /// The shape of StackOverflowDupQuestions: 30 candidates per query (2 duplicates, 10
    /// same-topic and 18 other-topic negatives), texts of title length.
    pub fn stackoverflow_shaped(train_queries: usize, test_queries: usize) -> DemoOptions {
        DemoOptions {
            train_queries,
            test_queries,
            positives: 2,
            hard_negatives: 10,
            easy_negatives: 18,
            title_lengths: true,
            ..DemoOptions::default()
        }
    }
}

/// Words per query.
const QUERY_WORDS: usize = 3;
/// Words per passage.
const PASSAGE_WORDS: usize = 8;

struct Vocab {
    stop: Vec<&'static str>,
    topics: Vec<Vec<&'static str>>,
}

fn vocab() -> Vocab {
    let words: Vec<&'static str> = WORDS.iter().copied().filter(|w| w.len() > 1).collect();
    let (stop, content) = words.split_at(STOP.min(words.len()));
    let topics = content
        .chunks(6)
        .filter(|c| c.len() == 6)
        .map(<[_]>::to_vec)
        .collect();
    Vocab {
        stop: stop.to_vec(),
        topics,
    }
}

/// Words of a StackOverflow-title-length text: triangular on 2..25, mode 7 (about 15 tokens).
fn title_words(rng: &mut StdRng) -> usize {
    let (a, c, b) = (2.0f64, 7.0f64, 25.0f64);
    let u: f64 = rng.random();
    let x = if u < (c - a) / (b - a) {
        a + (u * (b - a) * (c - a)).sqrt()
    } else {
        b - ((1.0 - u) * (b - a) * (b - c)).sqrt()
    };
    x.round() as usize
}

/// The word count of a passage under `opts`.
fn passage_words(rng: &mut StdRng, opts: &DemoOptions) -> usize {
    if opts.title_lengths {
        title_words(rng)
    } else {
        PASSAGE_WORDS
    }
}

fn text(rng: &mut StdRng, must: &[&str], pool: &[&str], stop: &[&str], len: usize) -> String {
    let mut words: Vec<&str> = must.to_vec();
    while words.len() < len {
        let from = if rng.random_bool(0.3) { stop } else { pool };
        if let Some(w) = from.choose(rng) {
            words.push(w);
        }
    }
    words.shuffle(rng);
    words.join(" ")
}

fn sample(rng: &mut StdRng, v: &Vocab, opts: &DemoOptions) -> Sample {
    let t = rng.random_range(0..v.topics.len());
    let topic = &v.topics[t];
    let query_words: Vec<&str> = topic.choose_multiple(rng, QUERY_WORDS).copied().collect();
    let others: Vec<&str> = topic
        .iter()
        .copied()
        .filter(|w| !query_words.contains(w))
        .collect();
    let positive = (0..opts.positives)
        .map(|_| {
            let shared = 2 + rng.random_range(0..2);
            let len = passage_words(rng, opts);
            text(rng, &query_words[..shared], topic, &v.stop, len)
        })
        .collect();
    let mut negative: Vec<String> = (0..opts.hard_negatives)
        .map(|_| {
            let one = query_words[rng.random_range(0..QUERY_WORDS)];
            let len = passage_words(rng, opts);
            text(rng, &[one], &others, &v.stop, len)
        })
        .collect();
    for _ in 0..opts.easy_negatives {
        let mut u = rng.random_range(0..v.topics.len() - 1);
        if u >= t {
            u += 1;
        }
        let len = passage_words(rng, opts);
        negative.push(text(rng, &[], &v.topics[u], &v.stop, len));
    }
    negative.shuffle(rng);
    let query = if opts.title_lengths {
        let len = title_words(rng).max(QUERY_WORDS);
        text(rng, &query_words, topic, &v.stop, len)
    } else {
        query_words.join(" ")
    };
    Sample {
        query,
        positive,
        negative,
    }
}

/// Generates the (train, test) splits; the same options always give the same data.
pub fn generate(opts: &DemoOptions) -> (Vec<Sample>, Vec<Sample>) {
    let v = vocab();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let train = (0..opts.train_queries)
        .map(|_| sample(&mut rng, &v, opts))
        .collect();
    let test = (0..opts.test_queries)
        .map(|_| sample(&mut rng, &v, opts))
        .collect();
    (train, test)
}

/// Writes samples as an MTEB reranking `.jsonl` file, atomically.
pub fn write_samples(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    for s in samples {
        write_sample(&mut file, s).map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

fn write_sample(out: &mut impl Write, s: &Sample) -> std::io::Result<()> {
    out.write_all(b"{\"query\": ")?;
    write_str(out, &s.query)?;
    for (key, list) in [("positive", &s.positive), ("negative", &s.negative)] {
        write!(out, ", \"{key}\": [")?;
        for (i, p) in list.iter().enumerate() {
            if i > 0 {
                out.write_all(b", ")?;
            }
            write_str(out, p)?;
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"}\n")
}

/// Writes `train.jsonl` and `test.jsonl` under `dir` and returns their paths.
pub fn write_demo_data(dir: &Path, opts: &DemoOptions) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (train, test) = generate(opts);
    let train_path = dir.join("train.jsonl");
    let test_path = dir.join("test.jsonl");
    write_samples(&train_path, &train)?;
    write_samples(&test_path, &test)?;
    Ok((train_path, test_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read_samples;

    #[test]
    fn generation_is_seeded_and_round_trips() {
        let opts = DemoOptions {
            train_queries: 5,
            test_queries: 3,
            ..DemoOptions::default()
        };
        let (train, test) = generate(&opts);
        assert_eq!(generate(&opts), (train.clone(), test.clone()));
        assert_ne!(
            generate(&DemoOptions {
                seed: 8,
                ..opts.clone()
            })
            .0,
            train
        );
        let dir = tempfile::tempdir().unwrap();
        let (tp, sp) = write_demo_data(dir.path(), &opts).unwrap();
        assert_eq!(read_samples(&tp).unwrap(), train);
        assert_eq!(read_samples(&sp).unwrap(), test);
        assert!(train
            .iter()
            .all(|s| s.positive.len() == 2 && s.negative.len() == 6));
    }

    #[test]
    fn bm25_ranks_positives_first_on_demo_data() {
        use crate::teacher::bm25::{score_samples, Bm25Params};
        let (train, _) = generate(&DemoOptions::default());
        let scores = score_samples(&train, Bm25Params::default());
        let mut offset = 0;
        let mut wins = 0;
        for s in &train {
            let sc = &scores[offset..offset + s.n_pairs()];
            let worst_pos = sc[..s.positive.len()]
                .iter()
                .cloned()
                .fold(f64::MAX, f64::min);
            let best_neg = sc[s.positive.len()..]
                .iter()
                .cloned()
                .fold(f64::MIN, f64::max);
            wins += usize::from(worst_pos > best_neg);
            offset += s.n_pairs();
        }
        assert!(wins * 10 > train.len() * 9, "{wins} of {}", train.len());
    }

    #[test]
    fn stackoverflow_shape_has_thirty_title_length_candidates() {
        let (train, _) = generate(&DemoOptions::stackoverflow_shaped(50, 1));
        assert!(train.iter().all(|s| s.n_pairs() == 30));
        let words: Vec<usize> = train
            .iter()
            .flat_map(|s| s.positive.iter().chain(&s.negative))
            .map(|t| t.split(' ').count())
            .collect();
        let mean = words.iter().sum::<usize>() as f64 / words.len() as f64;
        assert!((9.0..13.0).contains(&mean), "mean {mean} words");
        assert!(words.iter().all(|&n| (2..=25).contains(&n)));
        assert!(train.iter().any(|s| s.query.split(' ').count() > 8));
    }
}
