//! The stock `loads` binary: the library's command line with the bundled suites, `example` and
//! `shop`, which work against the embedded demo server (`loads demo`, `loads demo-server`).

mod example;
mod shop;

fn main() -> std::process::ExitCode {
    loads::main()
}
