//! Stages that end early: a corrupted or missing input file fails the stage with a message
//! naming file, line and field, shown on the run, while finished stages keep their results;
//! cancelling a run stops its training between updates.

mod worker_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Device;
use gpu_runner::worker::{work, WorkerOptions};
use worker_support::{demo_inputs, start_server, Client};

fn start_worker(server: &str, workdir: &Path, stop: &Arc<AtomicBool>) -> JoinHandle<usize> {
    let stop = stop.clone();
    let mut opts = WorkerOptions::new(server, "stops-test", workdir);
    opts.poll = Duration::from_millis(100);
    opts.checkpoint_every = None;
    std::thread::spawn(move || work(&opts, &Device::Cpu, &stop).unwrap())
}

#[test]
fn a_corrupted_input_fails_its_stage_with_file_line_and_field_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 1);
    let text = std::fs::read_to_string(&config.test_data).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = r#"{"query": "q", "positive": 5, "negative": []}"#;
    std::fs::write(&config.test_data, lines.join("\n") + "\n").unwrap();
    let mut missing = config.clone();
    missing.test_data = dir.path().join("data/nowhere.jsonl").display().to_string();

    let server = start_server();
    let api = Client::new(&server);
    let corrupted = api.launch(&config);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = start_worker(&server, &dir.path().join("runner"), &stop);
    assert_eq!(api.wait_final(corrupted, Duration::from_secs(60)), "failed");
    let absent = api.launch(&missing);
    assert_eq!(api.wait_final(absent, Duration::from_secs(60)), "failed");
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();

    let failed = api.stage(corrupted, "score_test");
    assert_eq!(failed["status"], "failed");
    let message = failed["message"].as_str().unwrap();
    let expected = format!("{}:3: positive: expected a list", config.test_data);
    assert!(message.contains(&expected), "{message}");
    // The stage that finished before keeps its status and its uploaded scores (every scoring
    // job uploads its scores to the server, as the only shard of an unsharded run).
    let scored = api.stage(corrupted, "score_train");
    assert_eq!(scored["status"], "done");
    let artifacts = api.get(&format!("/runs/{corrupted}/artifacts"));
    let kept = artifacts.as_array().unwrap().iter().any(|a| {
        a["kind"] == "teacher_scores_shard"
            && a["stage_id"] == scored["id"]
            && a["size_bytes"].as_i64() > Some(0)
    });
    assert!(kept, "{artifacts}");

    // The missing test split fails the stage that reads it, naming the file; the training
    // split's scores, which do not need it, are kept.
    let failed = api.stage(absent, "score_test");
    assert_eq!(failed["status"], "failed");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains(&missing.test_data), "{message}");
    assert_eq!(api.stage(absent, "score_train")["status"], "done");
}

/// The `checkpoint-<step>` directories of a run's unfinished training under `workdir`.
fn stop_checkpoints(workdir: &Path, run: i64) -> Vec<usize> {
    let stages = workdir.join(format!("run-{run}/stages"));
    let mut steps = Vec::new();
    for stage in std::fs::read_dir(stages).into_iter().flatten().flatten() {
        let name = stage.file_name().to_string_lossy().to_string();
        if !name.starts_with(".train-") {
            continue;
        }
        for ck in std::fs::read_dir(stage.path().join("model"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let ck_name = ck.file_name().to_string_lossy().to_string();
            if let Some(step) = ck_name.strip_prefix("checkpoint-") {
                if ck.path().join("trainer_state.json").is_file() {
                    steps.extend(step.parse::<usize>().ok());
                }
            }
        }
    }
    steps
}

#[test]
fn cancelling_a_run_stops_its_training_between_updates() {
    let dir = tempfile::tempdir().unwrap();
    // Enough epochs that the training still runs when the cancel arrives: the first loss
    // points reach the server a second after it starts, and three epochs of the tiny student
    // can be over by then.
    let epochs = 30;
    let config = demo_inputs(dir.path(), epochs);
    let server = start_server();
    let api = Client::new(&server);
    let run = api.launch(&config);
    let workdir = dir.path().join("runner");
    let stop = Arc::new(AtomicBool::new(false));
    let worker = start_worker(&server, &workdir, &stop);
    api.wait_for(Duration::from_secs(60), "training to get going", |c| {
        c.series_steps(run, "loss").len() >= 5
    });
    api.post(&format!("/runs/{run}/cancel"), &serde_json::json!({}));
    // With periodic checkpoints off, a checkpoint exists only if the training stopped early.
    let mut steps = Vec::new();
    api.wait_for(Duration::from_secs(30), "the training to stop", |_| {
        steps = stop_checkpoints(&workdir, run);
        !steps.is_empty()
    });
    stop.store(true, Ordering::Relaxed);
    let jobs = worker.join().unwrap();
    // Scores, triplets (train and test) and the evaluation before training; not the training.
    assert_eq!(jobs, 5);
    assert_eq!(api.get(&format!("/runs/{run}"))["status"], "cancelled");
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(steps[0] >= 5 && steps[0] < planned_updates(&workdir, run, epochs as usize, 32));
}

/// Updates planned for `epochs` over the run's training triplets in batches of `batch`.
fn planned_updates(workdir: &Path, run: i64, epochs: usize, batch: usize) -> usize {
    let stages = workdir.join(format!("run-{run}/stages"));
    let triplets = std::fs::read_dir(&stages)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("triplets_train-")
        })
        .unwrap()
        .path()
        .join("triplets.jsonl");
    let n = std::fs::read_to_string(triplets).unwrap().lines().count();
    epochs * (n / batch)
}
