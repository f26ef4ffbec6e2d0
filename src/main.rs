//! The stock `loads` binary: the library's command line with the bundled example suite, which
//! works against the embedded demo server (`loads demo`, `loads demo-server`).

mod example;

fn main() -> std::process::ExitCode {
    loads::main()
}
