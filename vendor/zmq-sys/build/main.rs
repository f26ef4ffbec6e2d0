use std::path::PathBuf;

pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");

    // loads: link against the libsodium that vendor/libsodium-sys built from source, which
    // enables ZMQ_CURVE (the published zmq-sys passes `None` here, which builds libzmq without
    // CURVE).
    let lib = std::env::var("DEP_SODIUM_LIB").expect("loads-libsodium-sys exports DEP_SODIUM_LIB");
    let include =
        std::env::var("DEP_SODIUM_INCLUDE").expect("loads-libsodium-sys exports DEP_SODIUM_INCLUDE");
    // libzmq's own compiler warnings are not ours to fix: keep the build output quiet (cargo
    // shows a path dependency's build warnings).
    for var in ["CFLAGS", "CXXFLAGS"] {
        let mut flags = std::env::var(var).unwrap_or_default();
        flags.push_str(" -w");
        std::env::set_var(var, flags);
    }
    zeromq_src::Build::new()
        .with_libsodium(Some(zeromq_src::LibLocation::new(
            PathBuf::from(lib),
            PathBuf::from(include),
        )))
        .build();
}

fn main() {
    configure()
}
