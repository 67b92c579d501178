//! Crash safety of the runner, with real `gpu-runner work` processes sharing one workdir:
//! - kill -9 in the middle of training: after the lease expires the job is requeued, a second
//!   runner resumes from the last acknowledged checkpoint, and the loss series has every step
//!   exactly once;
//! - SIGTERM in the middle of training: the runner checkpoints, releases its job (no attempt
//!   counted) and exits 0; the next runner resumes.

mod worker_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use worker_support::{assert_exact_steps, demo_inputs, start_server, total_updates, Client};

/// A runner process, killed (SIGKILL) when dropped.
struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gpu-runner work` with a 3 s lease and a checkpoint every 5 updates.
fn runner(server: &str, name: &str, workdir: &Path) -> Runner {
    let child = Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
        .args([
            "work", "--server", server, "--name", name, "--device", "cpu",
        ])
        .args([
            "--lease-secs",
            "3",
            "--checkpoint-every",
            "5",
            "--poll-ms",
            "100",
        ])
        .arg("--workdir")
        .arg(workdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Runner(child)
}

/// Demo inputs in a temporary directory, a server, and a launched two-epoch run.
fn launch_two_epochs() -> (tempfile::TempDir, String, Client, i64) {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 2);
    let server = start_server();
    let api = Client::new(&server);
    let run = api.launch(&config);
    (dir, server, api, run)
}

/// Waits until the run's training has stored at least `points` loss points.
fn wait_for_training(api: &Client, run: i64, points: usize) {
    api.wait_for(Duration::from_secs(60), "training to get going", |c| {
        c.series_steps(run, "loss").len() >= points
    });
}

fn finish_with_second_runner(api: &Client, server: &str, run: i64, workdir: &Path) -> i64 {
    let second = runner(server, "second", workdir);
    let status = api.wait_final(run, Duration::from_secs(60));
    drop(second);
    assert_eq!(status, "done");
    let train = api.stage(run, "train");
    let n = total_updates(&train);
    assert_exact_steps(&api.series_steps(run, "loss"), n);
    let messages = api.log_messages(run, "train");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("resuming from the checkpoint")),
        "{messages:?}"
    );
    assert_eq!(train["runner"], "second");
    n
}

#[test]
fn kill_9_mid_training_resumes_on_a_second_runner_without_lost_or_repeated_steps() {
    let (dir, server, api, run) = launch_two_epochs();
    let workdir = dir.path().join("runners");
    let first = runner(&server, "first", &workdir);
    wait_for_training(&api, run, 12);
    drop(first); // SIGKILL
    let killed_at = api.series_steps(run, "loss").len() as i64;

    let n = finish_with_second_runner(&api, &server, run, &workdir);
    assert!(killed_at < n, "killed after {killed_at} of {n} updates");
    // Requeued after the lease (a busy machine may have let an earlier lease lapse too).
    let train = api.stage(run, "train");
    assert!(train["attempt"].as_i64() >= Some(2), "{train}");
}

#[test]
fn sigterm_mid_training_checkpoints_releases_and_exits_0() {
    let (dir, server, api, run) = launch_two_epochs();
    let workdir = dir.path().join("runners");
    let mut first = runner(&server, "first", &workdir);
    wait_for_training(&api, run, 7);
    let pid = first.0.id() as libc::pid_t;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exit = first.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // Released: back in the queue at once (no lease expiry), the attempt not counted.
    let train = api.stage(run, "train");
    assert_eq!(train["status"], "queued", "{train}");
    assert!(
        train["message"]
            .as_str()
            .unwrap()
            .contains("released by first"),
        "{train}"
    );
    let stopped_at = api.series_steps(run, "loss").len() as i64;

    let n = finish_with_second_runner(&api, &server, run, &workdir);
    assert!(stopped_at < n);
}
