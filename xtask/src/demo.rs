//! `cargo xtask demo`: install, build, start the dashboard on embedded SQLite, print the URL.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::app;
use crate::util::{self, step};

struct Options {
    port: u16,
    /// Exit once the demo is up instead of serving until Ctrl-C (used by tests).
    no_wait: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        port: 8480,
        no_wait: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                o.port = it
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port must be a number")?
            }
            "--no-wait" => o.no_wait = true,
            other => bail!("unknown demo option {other:?} (known: --port N, --no-wait)"),
        }
    }
    Ok(o)
}

/// Kills the child when dropped, so Ctrl-C or an error never leaves a server behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    app::build()?;
    step("building the server and the gpu-runner");
    util::exec(util::cargo().args(["build", "-p", "distillery-server", "-p", "gpu-runner"]))?;

    let data_dir = std::path::Path::new(".distillery/demo");
    std::fs::create_dir_all(data_dir)?;
    let url = format!("http://127.0.0.1:{}", opts.port);
    step(&format!(
        "starting the dashboard at {url} (SQLite in {})",
        data_dir.display()
    ));
    let server = Command::new(util::target_dir().join("debug/distillery-server"))
        .args(["--bind", &format!("127.0.0.1:{}", opts.port)])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--dist", app::DIST])
        .spawn()
        .context("starting distillery-server")?;
    let mut server = Guard(server);
    wait_healthy(&opts, &mut server)?;

    eprintln!(
        "\nDistillery is up in {:.0} s: open {url}\n",
        started.elapsed().as_secs_f64()
    );
    if opts.no_wait {
        return Ok(());
    }
    eprintln!("Press Ctrl-C to stop.");
    let status = server.0.wait()?;
    bail!("the server exited: {status}")
}

fn wait_healthy(opts: &Options, server: &mut Guard) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait()? {
            bail!("the server exited during start-up: {status}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", opts.port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the server did not start listening on port {} within 30 s",
        opts.port
    )
}
