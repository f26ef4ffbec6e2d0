//! The `loads` command line and its config files. [`main`] is the whole CLI: the stock binary and
//! every user's load-test binary call it, with their own suites registered.
//!
//! - `options`: the options of `run`, `broker` and `agent`, each declared once for the command
//!   line and the config file (a TOML file whose keys are the long option names; the command
//!   line wins), merged in one place;
//! - `run`: `run`, `list`, `demo`, `demo-server`;
//! - `cluster`: `broker`, `agent`, `ping`, `agents`, `runs`, `report`, `attach`, `stop`, `purge`,
//!   `check-cluster`, `keygen`, `worker`.
//!
//! Exit codes: 0 when every hit succeeded, 1 when any failure or error happened (or an output
//! could not write its report), 2 for usage and configuration errors, 99 when a `--threshold`
//! failed (whatever the hits did), 130 when the run was interrupted with Ctrl-C.

mod cluster;
mod options;
mod run;
mod v1_config;
mod web;

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::runner::RunError;
use cluster::*;
use options::{AgentArgs, BrokerArgs, RunOptions};
use run::{DemoOptions, DemoServerOptions, cmd_demo, cmd_demo_server, cmd_list, cmd_run};

/// Exit code: every hit succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: some hit failed or errored.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a threshold failed (or `--abort-on-threshold` stopped the run).
pub const EXIT_THRESHOLD: u8 = 99;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "loads",
    version,
    about = "Load-test HTTP and WebSocket services with tests written like unit tests",
    after_help = "Start with `loads demo`: it runs the bundled suite against the embedded demo server.\n\
                  Exit codes: 0 every hit succeeded, 1 failures or errors, 2 usage error, 99 a threshold failed,\n\
                  130 interrupted."
)]
struct Cli {
    #[command(flatten)]
    curve: CurveFlags,
    #[command(subcommand)]
    command: Command,
}

/// CURVE keys of the cluster commands (see `loads keygen` and the README's "Security").
#[derive(Args, serde::Serialize, serde::Deserialize, Debug, Default, Clone)]
#[serde(default, rename_all = "kebab-case")]
pub(super) struct CurveFlags {
    /// This process's CURVE key pair (from `loads keygen`): the broker's own, or an agent's or
    /// a caller's
    #[arg(long, global = true, value_name = "FILE", env = "LOADS_CURVE_KEY")]
    pub(super) curve_key: Option<PathBuf>,
    /// Agents and callers: the broker's public key (its .pub file, or the key itself)
    #[arg(long, global = true, value_name = "FILE|KEY", env = "LOADS_BROKER_KEY")]
    pub(super) broker_key: Option<String>,
}

impl CurveFlags {
    /// The keys of these flags in a config file.
    pub(super) const CONFIG_KEYS: [&str; 2] = ["curve-key", "broker-key"];

    /// The client keys of an agent or a caller, when given.
    pub(super) fn client(&self) -> anyhow::Result<Option<crate::transport::security::ClientKeys>> {
        match (&self.curve_key, &self.broker_key) {
            (None, None) => Ok(None),
            (Some(k), Some(b)) => Ok(Some(crate::transport::security::ClientKeys::load(k, b)?)),
            _ => anyhow::bail!(
                "give both --curve-key (this process's key pair) and --broker-key (the broker's public key), or neither"
            ),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a CURVE key pair: NAME.key (keep it secret) and NAME.pub (give it to the broker)
    Keygen(KeygenArgs),
    /// Run a test with many virtual users
    Run(Box<RunOptions>),
    /// List the registered tests
    List,
    /// Start the demo server in-process and load-test it with the bundled suite
    Demo(DemoOptions),
    /// Serve the demo target (HTML, JSON, delays, status codes, echo, auth, WebSocket)
    DemoServer(DemoServerOptions),
    /// Start a broker: it hands runs to agents, stores results and publishes them
    Broker(BrokerArgs),
    /// Start an agent: it runs the jobs a broker gives it in worker processes
    Agent(AgentArgs),
    /// Show the broker's pid, endpoints, agents and active runs (also: --ping-broker)
    #[command(long_flag = "ping-broker")]
    Ping(BrokerAddr),
    /// List the broker's agents: id, host, pid, idle or busy (and with which run), last
    /// heartbeat
    Agents(AgentsArgs),
    /// List the broker's active and past runs
    Runs(BrokerAddr),
    /// Render a stored run again with the outputs
    Report(ReportCommand),
    /// Follow a run of the cluster again (the active one, or RUN_ID) (also: --attach)
    #[command(long_flag = "attach")]
    Attach(AttachArgs),
    /// Stop a run of the cluster (its workers flush what they have), or with --agent the
    /// worker of one agent
    Stop(StopArgs),
    /// Stop every active run of the cluster (also: --purge-broker)
    #[command(long_flag = "purge-broker")]
    Purge(BrokerAddr),
    /// Run the bundled health test once on every idle agent and report each one (also:
    /// --check-cluster, --health-check)
    #[command(long_flag = "check-cluster", long_flag_alias = "health-check")]
    CheckCluster(CheckArgs),
    /// Run one job of an agent (started by the agent)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// An error the CLI reports before exiting.
#[derive(Debug, thiserror::Error)]
pub(super) enum CliError {
    #[error("{}", chain(.0))]
    Usage(anyhow::Error),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{}", chain(.0))]
    Other(anyhow::Error),
}

/// An error and its causes on one line, each cause once: a cause whose text its error already
/// shows (many errors print their source in their own message) is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Run(e) if e.is_usage() => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// Diagnostics to stderr, filtered by `LOADS_LOG` (`warn` unless set): a default level and
/// per-target levels, as in `LOADS_LOG=loads=debug,warn`; see [`log_filter`].
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = log_filter(std::env::var("LOADS_LOG").ok().as_deref());
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .try_init();
}

/// The filter of `LOADS_LOG`'s value: comma-separated `LEVEL` or `TARGET=LEVEL` entries
/// (blanks around an entry and empty entries ignored), else `warn`. `Targets`, not `EnvFilter`:
/// the same syntax without span filters, and no regex engine in the build. A value with an
/// entry that is not of that form (a span filter `target[span]=level`, a level that is not
/// one) keeps `warn` as a whole rather than silencing what it cannot read.
fn log_filter(value: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let fallback = || Targets::new().with_default(LevelFilter::WARN);
    let Some(value) = value else {
        return fallback();
    };
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        return fallback();
    }
    let mut filter = Targets::new();
    for entry in entries {
        let (target, level) = match entry.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, entry),
        };
        // `LevelFilter` reads "" as ERROR: an empty level is not one here.
        if level.is_empty() {
            return fallback();
        }
        let Ok(level) = level.parse::<LevelFilter>() else {
            return fallback();
        };
        match target {
            None => filter = filter.with_default(level),
            Some(target)
                if !target.is_empty()
                    && target.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')
                    }) =>
            {
                filter = filter.with_target(target, level)
            }
            Some(_) => return fallback(),
        }
    }
    filter
}

/// Runs the `loads` command line with `args` (the program name first) and returns the exit code.
pub fn run_cli<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    init_logging();
    // Agents, callers and workers talk to brokers with this process's keys, if any (a worker
    // takes its agent's from the job file).
    if !matches!(
        cli.command,
        Command::Broker(_) | Command::Worker(_) | Command::Run(_) | Command::Agent(_)
    ) {
        match cli.curve.client() {
            Ok(keys) => crate::transport::security::set_client_keys(keys),
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                return EXIT_USAGE;
            }
        }
    }
    if matches!(
        cli.command,
        Command::List
            | Command::Ping(_)
            | Command::Agents(_)
            | Command::Runs(_)
            | Command::Report(_)
    ) {
        quiet_on_closed_pipe();
    }
    let outcome = match &cli.command {
        Command::Run(o) => cmd_run(o, &cli.curve),
        Command::List => Ok(cmd_list()),
        Command::Demo(o) => cmd_demo(o),
        Command::DemoServer(o) => cmd_demo_server(o),
        Command::Keygen(o) => cmd_keygen(o),
        Command::Broker(o) => cmd_broker(o, &cli.curve),
        Command::Agent(o) => cmd_agent(o, &cli.curve),
        Command::Ping(o) => cmd_ping(o),
        Command::Agents(o) => cmd_agents(o),
        Command::Runs(o) => cmd_runs(o),
        Command::Report(o) => cmd_report(o),
        Command::Attach(o) => cmd_attach(o),
        Command::Stop(o) => match &o.agent {
            Some(agent) => cmd_stop_agent(&o.broker.broker, agent),
            None => cmd_stop(&o.broker.broker, o.run_id.as_deref()),
        },
        Command::Purge(o) => cmd_stop(&o.broker, None),
        Command::CheckCluster(o) => cmd_check(o),
        Command::Worker(o) => cmd_worker(o),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}

/// Lets a command that only prints end quietly when its reader goes away (`loads runs | head`),
/// as other command-line tools do: the default action of SIGPIPE, which Rust's runtime ignores
/// (so that printing panicked with "Broken pipe"). Never for a run, an agent or a broker, whose
/// writes to sockets must see the error, not end the process.
fn quiet_on_closed_pipe() {
    // SAFETY: sets the disposition of one signal to its default, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The `loads` command line, with every suite linked into this binary. Call it from `main`:
/// `fn main() -> std::process::ExitCode { loads::main() }`.
pub fn main() -> ExitCode {
    ExitCode::from(run_cli(std::env::args_os()))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    #[test]
    fn loads_log_reads_levels_and_targets_and_keeps_warn_for_what_it_cannot_read() {
        let on = |value: Option<&str>, target: &str, level: Level| {
            super::log_filter(value).would_enable(target, &level)
        };
        // Unset, empty, blanks: warn.
        for value in [None, Some(""), Some(" , ")] {
            assert!(on(value, "loads", Level::WARN), "{value:?}");
            assert!(!on(value, "loads", Level::INFO), "{value:?}");
        }
        assert!(on(Some("debug"), "anything", Level::DEBUG));
        assert!(on(Some("loads=debug"), "loads::cli", Level::DEBUG));
        assert!(!on(Some("loads=debug"), "hyper", Level::ERROR));
        // Blanks around entries and a trailing comma are ignored.
        let value = Some("warn, loads::cli=trace ,");
        assert!(on(value, "loads::cli", Level::TRACE));
        assert!(on(value, "other", Level::WARN));
        assert!(!on(value, "other", Level::INFO));
        // What it cannot read keeps warn, never silence.
        for bad in [
            "loads[run]=debug",
            "!!",
            "loads=",
            "loads=verbose",
            "=debug",
        ] {
            assert!(on(Some(bad), "loads", Level::WARN), "{bad}");
            assert!(!on(Some(bad), "loads", Level::INFO), "{bad}");
        }
    }

    use super::*;

    /// The run arguments of `opts`, config file included.
    fn run_args_of(opts: &RunOptions) -> anyhow::Result<crate::runner::RunArgs> {
        options::run_args(&options::run_options(opts)?)
    }

    fn parse(args: &[&str]) -> RunOptions {
        let mut v = vec!["loads", "run"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).expect("parse").command {
            Command::Run(o) => *o,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn command_line_wins_over_config_file() {
        let dir = std::env::temp_dir().join(format!("loads-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "test = \"example::health\"\nusers = \"2:3\"\nhits = 4\nserver-url = \"http://127.0.0.1:1\"\n\
             output = [\"stdout\", \"null\"]\nproject-name = \"p\"\nrequest-timeout = \"2s\"\n\
             external-process-timeout = \"5m\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let a = run_args_of(&parse(&["--config", p])).expect("args");
        assert_eq!(a.plan.test(), "example::health");
        assert_eq!(a.plan.users().values(), &[2, 3]);
        assert_eq!(
            a.plan.model.hits.as_ref().map(|h| h.values().to_vec()),
            Some(vec![4])
        );
        // `null` leaves the terminal's output out, unless `stdout` is given too.
        assert_eq!(a.report.outputs, vec!["stdout"]);
        assert_eq!(a.plan.request_timeout_secs(), 2.0);
        assert_eq!(
            a.plan.external_process_timeout(),
            Some(std::time::Duration::from_secs(300))
        );
        let b = run_args_of(&parse(&["--config", p, "-u", "7", "-d", "3", "-q", "x::y"]))
            .expect("args");
        assert_eq!(b.plan.test(), "x::y");
        assert_eq!(b.plan.users().values(), &[7]);
        assert_eq!(b.plan.model.hits, None);
        assert_eq!(b.plan.model.duration, Some(crate::config::Secs(3.0)));
        assert!(b.report.outputs.is_empty(), "{:?}", b.report.outputs);
        std::fs::write(&path, "userz = 3\n").expect("write");
        let err = run_args_of(&parse(&["--config", p, "a::b"])).expect_err("unknown key");
        assert!(err.to_string().contains("userz"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_keys_are_the_long_options_mapped_to_their_parts() {
        let dir = std::env::temp_dir().join(format!("loads-cli-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        let p = path.to_str().expect("utf8");
        std::fs::write(
            &path,
            "test = \"a::b\"\noutput-html-path = \"r.html\"\nobserver = \"webhook\"\n\
             notify-webhook-url = \"http://127.0.0.1:9/\"\nthreshold = \"p95<1s\"\n\
             timeout = 4\nabort-on-threshold = true\nnotify-email-tls = \"starttls\"\n\
             notify-email-user = \"u\"\nnotify-email-subject = \"{verdict}\"\n",
        )
        .expect("write");
        let a = run_args_of(&parse(&["--config", p])).expect("args");
        assert_eq!(a.notify.email_tls, Some(crate::config::EmailTls::Starttls));
        assert_eq!(a.notify.email_user.as_deref(), Some("u"));
        assert_eq!(a.notify.email_subject.as_deref(), Some("{verdict}"));
        assert_eq!(a.report.output_options.html_path.as_deref(), Some("r.html"));
        assert_eq!(a.notify.notifiers, vec!["webhook"]);
        assert_eq!(a.notify.webhook_url.as_deref(), Some("http://127.0.0.1:9/"));
        assert_eq!(a.report.thresholds, vec!["p95<1s"]);
        assert_eq!(a.plan.request_timeout_secs(), 4.0);
        assert!(a.plan.abort_on_threshold);
        assert_eq!(a.report.outputs, vec!["stdout"]);
        // The JSON that travels keeps the earlier names.
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["observers"][0], "webhook");
        assert_eq!(json["output_options"]["html_path"], "r.html");
        // Options only the command line takes are not keys.
        std::fs::write(&path, "detach = true\nconfig = \"x.toml\"\n").expect("write");
        let err = run_args_of(&parse(&["--config", p, "a::b"])).expect_err("not keys");
        let text = err.to_string();
        assert!(
            text.contains("`detach`") && text.contains("`config`"),
            "{text}"
        );
        // A long name and its alias cannot both be given; a date is not text; an old
        // spelling mistyped gets its suggestion.
        for (text, needle) in [
            ("timeout = 3\nrequest-timeout = 4\n", "set the same option"),
            ("project-name = 1979-05-27\n", "TOML date"),
            (
                "observer-webhok-url = \"x\"\n",
                "did you mean `observer-webhook-url`",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = run_args_of(&parse(&["--config", p, "a::b"])).expect_err(text);
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
        // A bad value is reported with its key.
        std::fs::write(&path, "ramp-up = \"soon\"\n").expect("write");
        let err = run_args_of(&parse(&["--config", p, "a::b"])).expect_err("bad value");
        assert!(err.to_string().contains("key `ramp-up`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Cli::try_parse_from(["loads", "run", "a::b", "-u", "0"]).expect_err("zero users");
        let text = e.to_string();
        assert!(
            text.contains("--users") && text.contains("at least 1"),
            "{text}"
        );
        let e = Cli::try_parse_from(["loads", "run", "a::b", "--hits", "2", "-d", "1s"])
            .expect_err("both");
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        let e = Cli::try_parse_from(["loads", "run", "a::b", "-d", "soon"]).expect_err("duration");
        assert!(e.to_string().contains("--duration"), "{e}");
    }
}
