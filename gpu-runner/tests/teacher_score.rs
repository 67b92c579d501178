//! Scoring jobs on the tiny teacher: output format and order, resume after a crash, the cache,
//! and the `gpu-runner score` command end to end.

mod teacher_support;

use std::path::Path;

use gpu_runner::scores::read_scores;
use gpu_runner::teacher::job::{self, JobOptions, JobReport};
use gpu_runner::teacher::{Batching, Teacher};
use indicatif::ProgressBar;

fn pairs(n: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("query {} {tag}", i / 3),
                format!("passage number {i} about {tag}"),
            )
        })
        .collect()
}

fn run(
    teacher: &Teacher,
    pairs: &[(String, String)],
    out: &Path,
    cache: Option<&Path>,
) -> JobReport {
    let options = JobOptions {
        batching: Batching::Size(4),
        window: 3,
        cache: cache.map(|c| gpu_runner::teacher::cache::CacheAt::File(c.to_path_buf())),
    };
    job::run(teacher, pairs, out, &options, &ProgressBar::hidden()).unwrap()
}

#[test]
fn job_writes_flattened_order_resumes_and_uses_the_cache() {
    let teacher = teacher_support::tiny_teacher();
    let dir = tempfile::tempdir().unwrap();
    let all = pairs(10, "java");
    let out = dir.path().join("scores.jsonl");
    let report = run(&teacher, &all, &out, None);
    assert_eq!(
        report,
        JobReport {
            total: 10,
            resumed: 0,
            from_cache: 0,
            computed: 10
        }
    );
    let records = read_scores(&out).unwrap();
    let refs: Vec<(&str, &str)> = all.iter().map(|(q, p)| (q.as_str(), p.as_str())).collect();
    let expected = teacher.score_pairs(&refs, Batching::Size(10)).unwrap();
    for ((rec, (q, p)), s) in records.iter().zip(&all).zip(&expected) {
        assert_eq!((&rec.query, &rec.passage), (q, p));
        assert!(
            (rec.score - f64::from(*s)).abs() < 1e-5,
            "{} vs {s}",
            rec.score
        );
    }
    assert!(!job::partial_path(&out).exists());

    // A crash after four pairs, mid-way through the fifth line: the window of the fourth pair
    // (pairs 3..6, one query) is scored again, in the batches of the uninterrupted run.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut partial: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    partial.push_str("{\"query\": \"query 1 ja");
    std::fs::write(job::partial_path(&out), partial).unwrap();
    std::fs::remove_file(&out).unwrap();
    let report = run(&teacher, &all, &out, None);
    assert_eq!(
        report,
        JobReport {
            total: 10,
            resumed: 3,
            from_cache: 0,
            computed: 7
        }
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);

    // An overlapping file computes only its new pairs.
    let cache = dir.path().join("cache.jsonl");
    run(&teacher, &all, &dir.path().join("a.jsonl"), Some(&cache));
    let mut overlap = all[5..].to_vec();
    overlap.extend(pairs(4, "python"));
    let out_b = dir.path().join("b.jsonl");
    let report = run(&teacher, &overlap, &out_b, Some(&cache));
    assert_eq!(
        report,
        JobReport {
            total: 9,
            resumed: 0,
            from_cache: 5,
            computed: 4
        }
    );
    let b = read_scores(&out_b).unwrap();
    assert_eq!(b[..5], records[5..]);
}

#[test]
fn score_command_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("test.jsonl");
    std::fs::write(
        &data,
        concat!(
            "{\"query\": \"reverse a list\", \"positive\": [\"use reversed()\"], \"negative\": [\"cake\", \"trains\"]}\n",
            "{\"query\": \"parse int in Java\", \"positive\": [\"Integer.parseInt\"], \"negative\": [\"tomatoes\"]}\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("out/scores.jsonl");
    let score = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
            .arg("score")
            .arg("--teacher")
            .arg(teacher_support::tiny_model_dir())
            .arg("--input")
            .arg(&data)
            .arg("--output")
            .arg(&out)
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let first = score(&["--batch-size", "2"]);
    assert!(first.contains("computed=5"), "{first}");
    let records = read_scores(&out).unwrap();
    let order: Vec<&str> = records.iter().map(|r| r.passage.as_str()).collect();
    assert_eq!(
        order,
        [
            "use reversed()",
            "cake",
            "trains",
            "Integer.parseInt",
            "tomatoes"
        ]
    );
    let line = std::fs::read_to_string(&out).unwrap();
    assert!(
        line.starts_with(
            "{\"query\": \"reverse a list\", \"passage\": \"use reversed()\", \"score\": "
        ),
        "{line}"
    );

    let second = score(&["--batch-tokens", "512"]);
    assert!(
        second.contains("from_cache=5") && second.contains("computed=0"),
        "{second}"
    );
    assert_eq!(read_scores(&out).unwrap(), records);

    let shard = dir.path().join("shard1.jsonl");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
        .args(["score", "--shard", "1/2", "--no-cache", "--teacher"])
        .arg(teacher_support::tiny_model_dir())
        .arg("--input")
        .arg(&data)
        .arg("--output")
        .arg(&shard)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Shards are whole windows (here one query each): the second query's two pairs.
    let shard_records = read_scores(&shard).unwrap();
    assert_eq!(shard_records.len(), 2);
    assert_eq!(shard_records[0].passage, "Integer.parseInt");
}

/// The shards' score files of a run, as a server would hand them back.
struct LocalShards {
    rundir: std::path::PathBuf,
    stage: String,
}

impl gpu_runner::pipeline::shards::ShardSource for LocalShards {
    fn fetch(
        &self,
        _kind: distillery_api::StageKind,
        index: usize,
        count: usize,
        dest: &Path,
    ) -> gpu_runner::Result<()> {
        let from =
            gpu_runner::pipeline::shards::shard_path(&self.rundir, &self.stage, index, count);
        std::fs::copy(&from, dest).map_err(|e| gpu_runner::Error::io(&from, e))?;
        Ok(())
    }
}

/// Writes `lines` as the data set and returns it with a run config of the tiny teacher on it.
fn model_teacher_run(dir: &Path, lines: &str) -> (std::path::PathBuf, distillery_api::RunConfig) {
    let data = dir.join("train.jsonl");
    std::fs::write(&data, lines).unwrap();
    let path = data.display().to_string();
    let cfg = distillery_api::RunConfig {
        teacher: teacher_support::tiny_model_dir().display().to_string(),
        student: "unused".into(),
        train_data: path.clone(),
        test_data: path,
        teacher_max_length: 256,
        ..distillery_api::RunConfig::default()
    };
    (data, cfg)
}

#[test]
fn model_teacher_shards_concatenate_to_the_unsharded_score_file() {
    use distillery_api::{RunConfig, StageKind};
    use gpu_runner::observe::{Silent, StageContext};
    use gpu_runner::pipeline::{scoring_stage, shards, stages};

    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = model_teacher_run(
        dir.path(),
        concat!(
            "{\"query\": \"reverse a list\", \"positive\": [\"use reversed()\"], \"negative\": [\"cake\", \"trains\"]}\n",
            "{\"query\": \"parse int in Java\", \"positive\": [\"Integer.parseInt\"], \"negative\": [\"tomatoes\", \"a much longer passage about nothing in particular\"]}\n",
            "{\"query\": \"sort a map\", \"positive\": [\"sorted(d.items())\"], \"negative\": [\"maps of Europe\"]}\n",
        ),
    );
    let cfg = RunConfig {
        teacher_shards: 3,
        ..cfg
    };
    let ctx = StageContext::silent();
    let device = candle_core::Device::Cpu;
    let whole = dir.path().join("whole.jsonl");
    stages::score(&cfg, &data, &whole, &device, &ctx, None).unwrap();

    let rundir = dir.path().join("run");
    for i in 0..3 {
        let (file, stats) =
            shards::score_shard(&cfg, &rundir, StageKind::ScoreTrain, (i, 3), &device, &ctx)
                .unwrap();
        assert!(
            stats.is_some() && file.is_file(),
            "a new shard is scored and measured"
        );
    }
    let (_, again) =
        shards::score_shard(&cfg, &rundir, StageKind::ScoreTrain, (1, 3), &device, &ctx).unwrap();
    assert!(
        again.is_none(),
        "a finished shard is reused, not measured again"
    );
    let source = LocalShards {
        rundir: rundir.clone(),
        stage: scoring_stage(&cfg, StageKind::ScoreTrain).unwrap().1,
    };
    let merged = dir.path().join("merged.jsonl");
    shards::merge_shards(StageKind::ScoreTrain, 3, &data, &merged, &source, &Silent).unwrap();
    assert_eq!(read_scores(&merged).unwrap().len(), 8);
    assert!(std::fs::read(&merged).unwrap() == std::fs::read(&whole).unwrap());
}

#[test]
fn a_second_run_takes_every_score_from_the_runner_cache() {
    use distillery_api::RunConfig;
    use gpu_runner::observe::StageContext;
    use gpu_runner::pipeline::stages;

    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = model_teacher_run(
        dir.path(),
        concat!(
            "{\"query\": \"reverse a list\", \"positive\": [\"use reversed()\"], \"negative\": [\"cake\", \"trains\"]}\n",
            "{\"query\": \"sort a map\", \"positive\": [\"sorted(d.items())\"], \"negative\": [\"maps of Europe\"]}\n",
        ),
    );
    let cache = dir.path().join("score-cache");
    let ctx = StageContext {
        score_cache: Some(&cache),
        ..StageContext::silent()
    };
    let device = candle_core::Device::Cpu;
    let (first, second) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let work = stages::score(&cfg, &data, &first, &device, &ctx, None).unwrap();
    assert_eq!((work.items, work.from_cache), (5, Some(0)));
    let work = stages::score(&cfg, &data, &second, &device, &ctx, None).unwrap();
    assert_eq!(
        (work.items, work.from_cache),
        (5, Some(5)),
        "nothing is scored twice"
    );
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    // Another prompt is another key: nothing comes from the cache.
    let other = RunConfig {
        instruction: "Judge whether the passage answers the question.".into(),
        ..cfg
    };
    let third = dir.path().join("c.jsonl");
    let work = stages::score(&other, &data, &third, &device, &ctx, None).unwrap();
    assert_eq!(work.from_cache, Some(0));
}
