//! `loads run`, `loads list`, `loads demo` and `loads demo-server`: the commands that run tests
//! in this process (or hand them to a cluster) and report them. Options enter merged (see
//! [`super::options`]); an exit code leaves.

use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;

use super::options::{RunOptions, run_args, run_options};
use super::{CliError, CurveFlags, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD};
use crate::case::{all_tests, suites};
use crate::config::{ModelArgs, PlanArgs, ReportArgs, Secs};
use crate::demo::DemoServer;
use crate::result::TestResult;
use crate::runner::{Cycles, DistributedRunner, LocalRunner, RunArgs, RunError, Runner};

#[derive(Args, Debug)]
pub(super) struct DemoOptions {
    /// Virtual users of the HTTP part of the demo
    #[arg(short = 'u', long, default_value = "50", value_name = "N[:N...]")]
    users: Cycles,
    /// Hits per user of the HTTP part, instead of running it for a duration
    #[arg(long, value_name = "N[:N...]", conflicts_with = "duration")]
    hits: Option<Cycles>,
    /// How long the HTTP part runs [default: 5s]
    #[arg(short = 'd', long, value_name = "DURATION")]
    duration: Option<Secs>,
}

#[derive(Args, Debug)]
pub(super) struct DemoServerOptions {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port)
    #[arg(
        short = 'b',
        long,
        default_value = "127.0.0.1:8080",
        value_name = "ADDR:PORT"
    )]
    bind: SocketAddr,
    /// Worker threads, 1 to 1024
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
}

/// The exit code of a finished run.
pub fn exit_code(result: &TestResult) -> u8 {
    if result.interrupted() {
        EXIT_INTERRUPTED
    } else if result.aborted().is_some() || !result.thresholds_pass() {
        EXIT_THRESHOLD
    } else if !result.is_success() || !result.output_errors().is_empty() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

pub(super) fn report_output_errors(result: &TestResult) {
    for e in result.output_errors() {
        eprintln!("error: {e}");
    }
}

pub(super) fn cmd_run(cli: &RunOptions, curve: &CurveFlags) -> Result<u8, CliError> {
    // The command line over the config file, read once.
    let opts = run_options(cli).map_err(CliError::Usage)?;
    let args = run_args(&opts).map_err(CliError::Usage)?;
    // The caller's keys: the command line (or environment) over the config file.
    let flags = CurveFlags {
        curve_key: curve.curve_key.clone().or(opts.curve.curve_key.clone()),
        broker_key: curve.broker_key.clone().or(opts.curve.broker_key.clone()),
    };
    crate::transport::security::set_client_keys(flags.client().map_err(CliError::Usage)?);
    let web = super::web::start(&opts.web, opts.detach)?;
    let result = match opts.agents {
        Some(n) => {
            let broker = opts
                .broker
                .clone()
                .unwrap_or_else(|| crate::transport::DEFAULT_FRONTEND.to_owned());
            let mut runner =
                DistributedRunner::new(args, n, &broker)?.include_files(&opts.include_files)?;
            super::web::control_load(runner.load_control());
            if opts.detach {
                let id = runner.detach()?;
                println!(
                    "Started run {id}; `loads attach {id}` follows it, `loads stop {id}` stops it"
                );
                return Ok(EXIT_OK);
            }
            match runner.run()? {
                Some(r) => r,
                None => return Ok(EXIT_OK),
            }
        }
        None => {
            // The seed system's habit: --include-file also on a local run, where the files are
            // already in place; each pattern must still match a file.
            for g in &opts.include_files {
                let matched = glob::glob(g)
                    .map_err(|e| {
                        RunError::Usage(crate::config::UsageError::new(
                            "--include-file",
                            format!("invalid --include-file {g:?}: {e}"),
                        ))
                    })?
                    .flatten()
                    .any(|p| p.is_file());
                if !matched {
                    return Err(RunError::Usage(crate::config::UsageError::new(
                        "--include-file",
                        format!("--include-file {g:?} matches no file"),
                    ))
                    .into());
                }
            }
            let mut runner = crate::runner::runner_for(args)?.handle_ctrl_c(true);
            super::web::control_load(runner.load_control());
            runner.execute()?
        }
    };
    report_output_errors(&result);
    if let Some(web) = web {
        web.linger(
            opts.web
                .web_linger
                .map_or(std::time::Duration::ZERO, |d| d.duration()),
        );
    }
    Ok(exit_code(&result))
}

pub(super) fn cmd_list() -> u8 {
    let tests = all_tests();
    if tests.is_empty() {
        println!(
            "No tests are registered in this binary: mark an impl block with #[loads::suite]."
        );
        return EXIT_OK;
    }
    let width = tests.iter().map(|t| t.full_name().len()).max().unwrap_or(0);
    for suite in suites() {
        match suite.doc.lines().next().filter(|l| !l.is_empty()) {
            Some(doc) => println!("{} — {doc}", suite.name),
            None => println!("{}", suite.name),
        }
        for t in tests.iter().filter(|t| std::ptr::eq(t.suite, suite)) {
            println!(
                "  {:width$}  {}",
                t.full_name(),
                t.info().doc.lines().next().unwrap_or("")
            );
        }
    }
    EXIT_OK
}

pub(super) fn cmd_demo(opts: &DemoOptions) -> Result<u8, CliError> {
    let server = DemoServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1)
        .context("cannot start the demo server")
        .map_err(CliError::Other)?;
    println!("Demo server listening on {}\n", server.url());
    let parts = [
        PlanArgs {
            tests: vec!["example::get_root".into()],
            model: ModelArgs {
                users: Some(opts.users.clone()),
                hits: opts.hits.clone(),
                duration: match (&opts.hits, opts.duration) {
                    (Some(_), _) => None,
                    (None, d) => Some(d.unwrap_or(Secs(5.0))),
                },
                ..ModelArgs::default()
            },
            server_url: Some(server.url()),
            ..PlanArgs::default()
        },
        PlanArgs {
            tests: vec!["example::websocket_echo".into()],
            model: ModelArgs {
                users: Some(Cycles::one(10)),
                hits: Some(Cycles::one(10)),
                ..ModelArgs::default()
            },
            server_url: Some(server.url()),
            ..PlanArgs::default()
        },
    ];
    let mut code = EXIT_OK;
    for (i, plan) in parts.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let args = RunArgs {
            plan,
            report: ReportArgs::default().resolved(false),
            ..RunArgs::default()
        };
        let runner = LocalRunner::new(args).map_err(|e| match e {
            RunError::UnknownTest(_) => CliError::Other(anyhow::anyhow!(
                "the demo needs the bundled `example` suite, which this binary does not have; \
                 run the stock `loads` binary (`cargo run --release -- demo`)"
            )),
            other => other.into(),
        })?;
        let result = runner.handle_ctrl_c(true).execute()?;
        report_output_errors(&result);
        code = code.max(exit_code(&result));
        if result.interrupted() {
            break;
        }
    }
    Ok(code)
}

pub(super) fn cmd_demo_server(opts: &DemoServerOptions) -> Result<u8, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(opts.threads))
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .map_err(CliError::Other)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.bind)
            .await
            .with_context(|| format!("cannot listen on {}", opts.bind))
            .map_err(CliError::Other)?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Other(e.into()))?;
        println!("loads demo server listening on http://{addr} (Ctrl-C to stop)");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        crate::demo::serve(listener, crate::config::signals::interrupts().wait())
            .await
            .context("demo server")
            .map_err(CliError::Other)?;
        Ok(EXIT_OK)
    })
}
