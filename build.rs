//! Finds what some integration tests need beyond Rust (Python with pyzmq and requests, Chromium
//! and chromedriver, root for a tmpfs), so that a test whose need is missing shows as *ignored* with the reason,
//! never as passed: `cargo test` prints `ignored, needs …` and counts it in the summary line.
//! `.ci/run` installs all of them. Nothing here changes the library or the binary.

use std::process::Command;

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LOADS_TEST_PYTHON");
    println!("cargo::rerun-if-env-changed=PATH");
    // With LOADS_REQUIRE_PYTHON, LOADS_REQUIRE_BROWSER or LOADS_REQUIRE_ROOT set (`.ci/run`
    // sets them) a missing need fails the build instead of ignoring its tests.
    let missing = |cfg: &str, require: &str, what: &str| {
        println!("cargo::rerun-if-env-changed={require}");
        if std::env::var_os(require).is_some() {
            panic!("{require} is set but {what}");
        }
        println!("cargo::rustc-cfg={cfg}");
    };
    for cfg in [
        "loads_no_python",
        "loads_no_chromium",
        "loads_no_webdriver",
        "loads_no_root",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    let python = std::env::var("LOADS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    if !works(&python, &["-c", "import zmq, requests"]) {
        missing(
            "loads_no_python",
            "LOADS_REQUIRE_PYTHON",
            &format!("{python} lacks pyzmq or requests"),
        );
    }
    if !["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| works(b, &["--version"]))
    {
        missing(
            "loads_no_chromium",
            "LOADS_REQUIRE_BROWSER",
            "no chromium was found: apt install chromium",
        );
    }
    if !(works("chromium", &["--version"]) && works("chromedriver", &["--version"])) {
        missing(
            "loads_no_webdriver",
            "LOADS_REQUIRE_BROWSER",
            "chromium or chromedriver is missing: apt install chromium chromium-driver",
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        missing(
            "loads_no_root",
            "LOADS_REQUIRE_ROOT",
            "this is not root (a tmpfs cannot be mounted)",
        );
    }
}
