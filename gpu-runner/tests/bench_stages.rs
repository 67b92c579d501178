//! `gpu-runner bench` measures the pipeline's own stages: on the tiny models, a row per stage
//! with the stage's real item counts.

mod teacher_support;

use candle_core::Device;
use distillery_api::{RunConfig, StageKind};
use gpu_runner::bench::{inputs, render_table, run, BenchOptions};

#[test]
fn the_tiny_pipeline_gives_a_row_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BenchOptions {
        device: Device::Cpu,
        workdir: dir.path().to_path_buf(),
        teacher: gpu_runner::teacher::new_model::Preset::Tiny,
        teacher_tokenizer: teacher_support::tokenizer_path(),
        student: gpu_runner::student::new_model::Preset::Tiny,
        train_queries: 4,
        test_queries: 2,
        config: RunConfig {
            batch_size: 4,
            grad_accum: 2,
            max_length: 64,
            teacher_max_length: 256,
            ..RunConfig::default()
        },
    };
    let cfg = inputs(&opts).unwrap();
    let rows = run(&cfg, dir.path(), &Device::Cpu).unwrap();
    let kinds: Vec<StageKind> = rows.iter().map(|r| r.stage).collect();
    assert_eq!(kinds, StageKind::ALL);
    let row = |k: StageKind| rows.iter().find(|r| r.stage == k).unwrap();
    // 4 train queries x 30 candidates, scored by the teacher; 2 x 30 test pairs predicted.
    let score = &row(StageKind::ScoreTrain).stats;
    assert_eq!((score.items, score.unit.as_str()), (120, "pairs"));
    assert_eq!(row(StageKind::EvalBefore).stats.items, 60);
    assert_eq!(row(StageKind::Train).stats.unit, "triplets");
    // 8 positives x 4 negatives per query.
    assert_eq!(row(StageKind::TripletsTrain).stats.items, 4 * 32);
    assert!(rows
        .iter()
        .all(|r| r.stats.seconds > 0.0 && r.projected_s > 0.0));
    assert!(render_table(&rows).contains("projected"));
    // The same inputs are reused by a second call.
    assert_eq!(inputs(&opts).unwrap(), cfg);
}
