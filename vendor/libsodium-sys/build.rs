use std::{
    env,
    path::{Path, PathBuf},
};

struct Target {
    name: String,
}

impl Target {
    fn get() -> Self {
        let mut target = env::var("TARGET").unwrap();
        // Hack for RISC-V; Rust apparently uses a different convention for RISC-V triples
        if target.starts_with("riscv") {
            let mut split = target.split('-');
            let arch = split.next().unwrap();
            let bitness = &arch[5..7];
            let rest = split.collect::<Vec<_>>().join("-");
            target = format!("riscv{bitness}-{rest}");
        }

        Self {
            name: target,
        }
    }
}

// When SODIUM_LIB_DIR has been set, add the directory to the Rust compiler search path
fn find_libsodium_env() {
    let lib_dir = env::var("SODIUM_LIB_DIR").unwrap(); // cannot fail

    println!("cargo:rustc-link-search=native={lib_dir}");
    let mode = if env::var("SODIUM_SHARED").is_ok() {
        "dylib"
    } else {
        "static"
    };
    let name = if cfg!(target_env = "msvc") {
        "libsodium"
    } else {
        "sodium"
    };
    println!("cargo:rustc-link-lib={mode}={name}");
    println!("cargo:warning=Using unknown libsodium version.");
}

// Try to find a system install of libsodium using pkg-config; return false if not found.
// Otherwise, adjust compiler flags and return true.
fn find_libsodium_pkgconfig() -> bool {
    match pkg_config::Config::new().probe("libsodium") {
        Ok(lib) => {
            for lib_dir in &lib.link_paths {
                println!("cargo:lib={}", lib_dir.to_str().unwrap());
            }
            for include_dir in &lib.include_paths {
                println!("cargo:include={}", include_dir.to_str().unwrap());
            }
            true
        }
        Err(_) => false,
    }
}

fn compile_libsodium_wasm_freestanding(
    source_dir: &Path,
    install_dir: &Path,
) -> Result<PathBuf, String> {
    use std::process::Command;

    let cpu = if cfg!(feature = "wasmer") {
        "-Dcpu=lime1+wide_arithmetic"
    } else {
        "-Dcpu=lime1"
    };
    let build_output = Command::new("zig")
        .current_dir(source_dir)
        .arg("build")
        .arg("--prefix")
        .arg(install_dir)
        .args([
            "-Dtarget=wasm32-freestanding",
            cpu,
            "-Dwasm_freestanding_libc=false",
            "-Doptimize=ReleaseFast",
            "-Dstatic=true",
            "-Dshared=false",
            "-Dtest=false",
        ])
        .output()
        .map_err(|error| {
            format!(
                "Failed to run 'zig build' for wasm32-freestanding: {error}\n\
                 The Zig SDK needs to be installed in order to cross-compile to WebAssembly."
            )
        })?;
    if !build_output.status.success() {
        return Err(format!(
            "Failed to build libsodium for wasm32-freestanding.\n{}\n{}",
            String::from_utf8_lossy(&build_output.stdout),
            String::from_utf8_lossy(&build_output.stderr)
        ));
    }

    Ok(install_dir.join("lib"))
}

// Compile libsodium from source using the traditional autoconf procedure, and return the directory containing the compiled library
fn compile_libsodium_traditional(
    target: &str,
    source_dir: &Path,
    install_dir: &Path,
) -> Result<PathBuf, String> {
    use std::{fs, process::Command, str};

    // Decide on CC, CFLAGS and the --host configure argument
    let build_compiler = cc::Build::new().get_compiler();
    let mut compiler = build_compiler.path().to_str().unwrap().to_string();
    let mut cflags = build_compiler.cflags_env().into_string().unwrap();
    let ldflags = env::var("SODIUM_LDFLAGS").unwrap_or_default();
    let host_arg;
    let help;
    if target.contains("-ios") {
        // Determine Xcode directory path
        let xcode_select_output = Command::new("xcode-select").arg("-p").output().unwrap();
        if !xcode_select_output.status.success() {
            return Err("Failed to run xcode-select -p".to_string());
        }
        let xcode_dir = str::from_utf8(&xcode_select_output.stdout)
            .unwrap()
            .trim()
            .to_string();

        // Determine SDK directory paths
        let sdk_dir_simulator = Path::new(&xcode_dir)
            .join("Platforms/iPhoneSimulator.platform/Developer/SDKs/iPhoneSimulator.sdk")
            .to_str()
            .unwrap()
            .to_string();
        let sdk_dir_ios = Path::new(&xcode_dir)
            .join("Platforms/iPhoneOS.platform/Developer/SDKs/iPhoneOS.sdk")
            .to_str()
            .unwrap()
            .to_string();

        // Min versions
        let ios_simulator_version_min = "9.0.0";
        let ios_version_min = "9.0.0";

        match target {
            "aarch64-apple-ios" => {
                cflags += " -arch arm64";
                cflags += &format!(" -isysroot {sdk_dir_ios}");
                cflags += &format!(" -mios-version-min={ios_version_min}");
                host_arg = "--host=aarch64-apple-darwin23".to_string();
            }
            "armv7-apple-ios" => {
                cflags += " -arch armv7";
                cflags += &format!(" -isysroot {sdk_dir_ios}");
                cflags += &format!(" -mios-version-min={ios_version_min}");
                cflags += " -mthumb";
                host_arg = "--host=arm-apple-darwin23".to_string();
            }
            "armv7s-apple-ios" => {
                cflags += " -arch armv7s";
                cflags += &format!(" -isysroot {sdk_dir_ios}");
                cflags += &format!(" -mios-version-min={ios_version_min}");
                cflags += " -mthumb";
                host_arg = "--host=arm-apple-darwin23".to_string();
            }
            "x86_64-apple-ios" => {
                cflags += " -arch x86_64";
                cflags += &format!(" -isysroot {sdk_dir_simulator}");
                cflags += &format!(" -mios-simulator-version-min={ios_simulator_version_min}");
                host_arg = "--host=x86_64-apple-darwin23".to_string();
            }
            "aarch64-apple-ios-sim" => {
                cflags += " -arch arm64";
                cflags += &format!(" -isysroot {sdk_dir_simulator}");
                cflags += &format!(" -mios-simulator-version-min={ios_simulator_version_min}");
                host_arg = "--host=aarch64-apple-darwin23".to_string();
            }
            _ => return Err(format!("Unknown iOS build target: {}", target)),
        }
        help = "";
    } else {
        if target.contains("i686") {
            compiler += " -m32 -maes";
            cflags += " -march=i686";
        }
        let host = env::var("HOST").unwrap();
        host_arg = format!("--host={target}");
        let cross_compiling = target != host;
        help = if cross_compiling {
            "***********************************************************\n\
             Use the 'cargo zigbuild' command to cross-compile Rust code\n\
             with C dependencies such as libsodium.\n\
             ***********************************************************\n"
        } else {
            ""
        };
    }

    // Run `./configure`
    let prefix_arg = format!("--prefix={}", install_dir.to_str().unwrap());
    let mut configure_cmd = Command::new(fs::canonicalize(source_dir.join("configure")).unwrap());
    if !compiler.is_empty() {
        configure_cmd.env("CC", &compiler);
    }
    if !cflags.is_empty() {
        configure_cmd.env("CFLAGS", &cflags);
    }
    if !ldflags.is_empty() {
        configure_cmd.env("LDFLAGS", &ldflags);
    }
    if env::var("SODIUM_DISABLE_PIE").is_ok() {
        configure_cmd.arg("--disable-pie");
    }
    configure_cmd.arg("--disable-ssp");
    #[cfg(feature = "optimized")]
    configure_cmd.arg("--enable-opt");
    // loads: always the minimal library, which keeps every function that libzmq's CURVE
    // calls and leaves out about 22 of libsodium's 150 source files.
    configure_cmd.arg("--enable-minimal");
    let configure_output = configure_cmd
        .current_dir(source_dir)
        .arg(&prefix_arg)
        .arg(&host_arg)
        .arg("--enable-shared=no")
        .arg("--disable-dependency-tracking")
        .output();
    let configure_output = match configure_output {
        Ok(output) => output,
        Err(error) => {
            return Err(format!("Failed to run './configure': {}\n{}", error, help));
        }
    };
    if !configure_output.status.success() {
        return Err(format!(
            "\n{:?}\nCFLAGS={}\nLDFLAGS={}\nCC={}\n{}\n{}\n{}\n",
            configure_cmd,
            cflags,
            ldflags,
            compiler,
            String::from_utf8_lossy(&configure_output.stdout),
            String::from_utf8_lossy(&configure_output.stderr),
            help
        ));
    }

    let j_arg = format!("-j{}", env::var("NUM_JOBS").unwrap());

    // Run `make install`
    let mut install_cmd = Command::new("make");
    let install_output = install_cmd
        .current_dir(source_dir)
        .arg(j_arg)
        .arg("install")
        .output();
    let install_output = match install_output {
        Ok(install_output) => install_output,
        Err(error) => {
            return Err(format!("Failed to run 'make install': {}\n", error));
        }
    };
    if !install_output.status.success() {
        panic!(
            "\n{}\n{}\n{}\n",
            String::from_utf8_lossy(&configure_output.stdout),
            String::from_utf8_lossy(&install_output.stdout),
            String::from_utf8_lossy(&install_output.stderr)
        );
    }
    Ok(install_dir.join("lib"))
}

// loads: the platforms whose configuration libsodium's own build.zig writes out (Linux, macOS
// and FreeBSD on x86-64 and 64-bit ARM) are built with the cc crate directly, without
// `configure` and `make`: `configure` alone ran for 15 s of a 2-core first build (its probes
// are serial), and make's libtool wraps each of the ~130 compilations in a shell script
// (issue 16 A.2). Every other target, and any build with LOADS_SODIUM_AUTOTOOLS set, still
// runs `configure` and `make` (compile_libsodium_traditional).
#[derive(Clone, Copy)]
enum CcOs {
    Linux,
    MacOs,
    FreeBsd,
}

#[derive(Clone, Copy)]
enum CcArch {
    X86_64,
    Aarch64,
}

#[derive(Clone, Copy)]
struct CcPlatform {
    os: CcOs,
    arch: CcArch,
}

impl CcPlatform {
    fn of(target: &str) -> Option<Self> {
        if env::var("LOADS_SODIUM_AUTOTOOLS").is_ok_and(|v| !v.is_empty() && v != "0") {
            return None;
        }
        let arch = if target.starts_with("x86_64-") {
            CcArch::X86_64
        } else if target.starts_with("aarch64-") {
            CcArch::Aarch64
        } else {
            return None;
        };
        // Exactly these ABIs: not gnux32 or gnu_ilp32, whose pointers are 32-bit.
        let os = if target.ends_with("-linux-gnu") || target.ends_with("-linux-musl") {
            CcOs::Linux
        } else if target.ends_with("-apple-darwin") {
            CcOs::MacOs
        } else if target.ends_with("-freebsd") {
            CcOs::FreeBsd
        } else {
            return None;
        };
        Some(Self { os, arch })
    }

    // The macros `configure` would find on this platform: libsodium's build.zig
    // (initLibConfig), for the same operating systems and CPUs.
    fn defines(self) -> Vec<(&'static str, &'static str)> {
        let mut d = vec![
            ("_GNU_SOURCE", "1"),
            ("CONFIGURED", "1"),
            ("MINIMAL", "1"),
            ("HAVE_ATOMIC_OPS", "1"),
            ("HAVE_C11_MEMORY_FENCES", "1"),
            ("HAVE_GCC_MEMORY_FENCES", "1"),
            ("HAVE_INLINE_ASM", "1"),
            ("HAVE_INTTYPES_H", "1"),
            ("HAVE_STDINT_H", "1"),
            ("HAVE_TI_MODE", "1"),
            ("NATIVE_LITTLE_ENDIAN", "1"),
            ("TLS", "_Thread_local"),
            ("HAVE_CATCHABLE_ABRT", "1"),
            ("HAVE_CATCHABLE_SEGV", "1"),
            ("HAVE_CLOCK_GETTIME", "1"),
            ("HAVE_GETPID", "1"),
            ("HAVE_MADVISE", "1"),
            ("HAVE_MLOCK", "1"),
            ("HAVE_MMAP", "1"),
            ("HAVE_MPROTECT", "1"),
            ("HAVE_NANOSLEEP", "1"),
            ("HAVE_POSIX_MEMALIGN", "1"),
            ("HAVE_PTHREAD", "1"),
            ("HAVE_PTHREAD_PRIO_INHERIT", "1"),
            ("HAVE_RAISE", "1"),
            ("HAVE_SYSCONF", "1"),
            ("HAVE_SYS_MMAN_H", "1"),
            ("HAVE_SYS_PARAM_H", "1"),
            ("HAVE_SYS_RANDOM_H", "1"),
            ("HAVE_WEAK_SYMBOLS", "1"),
        ];
        match self.os {
            CcOs::Linux => {
                d.push(("ASM_HIDE_SYMBOL", ".hidden"));
                d.push(("HAVE_SYS_AUXV_H", "1"));
                // What configure also finds on Linux and build.zig leaves out: getauxval
                // (glibc 2.16, musl), with which arm64 detects its crypto extensions at run time.
                d.push(("HAVE_GETAUXVAL", "1"));
            }
            CcOs::MacOs => {
                d.push(("ASM_HIDE_SYMBOL", ".private_extern"));
                d.push(("HAVE_ARC4RANDOM", "1"));
                d.push(("HAVE_ARC4RANDOM_BUF", "1"));
                d.push(("HAVE_GETENTROPY", "1"));
                d.push(("HAVE_MEMSET_S", "1"));
            }
            CcOs::FreeBsd => {
                d.push(("ASM_HIDE_SYMBOL", ".hidden"));
                d.push(("HAVE_ARC4RANDOM", "1"));
                d.push(("HAVE_ARC4RANDOM_BUF", "1"));
            }
        }
        match self.arch {
            CcArch::X86_64 => d.extend([
                ("HAVE_AMD64_ASM", "1"),
                ("HAVE_AVX_ASM", "1"),
                ("HAVE_CPUID", "1"),
                ("HAVE_XGETBV_ASM", "1"),
                ("HAVE_MMINTRIN_H", "1"),
                ("HAVE_EMMINTRIN_H", "1"),
                ("HAVE_PMMINTRIN_H", "1"),
                ("HAVE_TMMINTRIN_H", "1"),
                ("HAVE_SMMINTRIN_H", "1"),
                ("HAVE_AVXINTRIN_H", "1"),
                ("HAVE_AVX2INTRIN_H", "1"),
                ("HAVE_AVX512FINTRIN_H", "1"),
                ("HAVE_WMMINTRIN_H", "1"),
                ("HAVE_RDRAND", "1"),
                ("HAVE_CET_H", "1"),
            ]),
            CcArch::Aarch64 => d.push(("HAVE_ARMCRYPTO", "1")),
        }
        d
    }
}

// The source files of the minimal library: every .c and .S file under src/libsodium (the
// .S files guard themselves with the macros above), less those that Makefile.am adds only
// `if !MINIMAL` and the .S fragments that sandy2x.S includes (its noinst_HEADERS).
fn minimal_sources(lib_src: &Path) -> Result<Vec<PathBuf>, String> {
    use std::fs;
    let makefile_am = lib_src.join("Makefile.am");
    let am = fs::read_to_string(&makefile_am)
        .map_err(|e| format!("cannot read {}: {e}", makefile_am.display()))?;
    let mut excluded = std::collections::HashSet::new();
    let mut section: Option<&str> = None;
    for line in am.lines() {
        let t = line.trim().trim_end_matches('\\').trim();
        if t == "if !MINIMAL" {
            section = Some("minimal");
            continue;
        }
        if t.starts_with("noinst_HEADERS") {
            section = Some("headers");
        }
        if t == "endif" || t.is_empty() {
            section = None;
            continue;
        }
        if section.is_some() {
            for word in t.split_whitespace() {
                if word.ends_with(".c") || word.ends_with(".S") {
                    excluded.insert(lib_src.join(word));
                }
            }
        }
    }
    if excluded.is_empty() {
        return Err(format!(
            "{} has no `if !MINIMAL` sources: its layout changed; set LOADS_SODIUM_AUTOTOOLS=1 \
             to build with configure and make",
            makefile_am.display()
        ));
    }
    let mut sources = Vec::new();
    let mut dirs = vec![lib_src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "S"))
                && !excluded.contains(&path)
            {
                sources.push(path);
            }
        }
    }
    sources.sort();
    Ok(sources)
}

// version.h from version.h.in, with the numbers configure.ac sets and the minimal flag.
fn write_version_header(source_dir: &Path) -> Result<(), String> {
    use std::fs;
    let configure_ac = fs::read_to_string(source_dir.join("configure.ac"))
        .map_err(|e| format!("cannot read configure.ac: {e}"))?;
    let value = |key: &str| -> Result<String, String> {
        configure_ac
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::to_string))
            .ok_or_else(|| format!("configure.ac does not set {key}"))
    };
    let version = configure_ac
        .lines()
        .find_map(|l| l.strip_prefix("AC_INIT([libsodium],["))
        .and_then(|rest| rest.split(']').next())
        .ok_or("configure.ac has no AC_INIT([libsodium],[VERSION]...)")?
        .to_string();
    let major = value("SODIUM_LIBRARY_VERSION_MAJOR=")?;
    let minor = value("SODIUM_LIBRARY_VERSION_MINOR=")?;
    let dir = source_dir.join("src/libsodium/include/sodium");
    let template = fs::read_to_string(dir.join("version.h.in"))
        .map_err(|e| format!("cannot read version.h.in: {e}"))?;
    let header = template
        .replace("@VERSION@", &version)
        .replace("@SODIUM_LIBRARY_VERSION_MAJOR@", &major)
        .replace("@SODIUM_LIBRARY_VERSION_MINOR@", &minor)
        .replace(
            "@SODIUM_LIBRARY_MINIMAL_DEF@",
            "#define SODIUM_LIBRARY_MINIMAL 1",
        );
    if header.contains('@') {
        return Err("version.h.in has a placeholder this build does not know".to_string());
    }
    fs::write(dir.join("version.h"), header).map_err(|e| format!("cannot write version.h: {e}"))
}

// Compile the minimal static library with the cc crate (in parallel, at the profile's
// optimisation level, with the flags configure gives it) and return its directory.
fn compile_libsodium_cc(
    platform: CcPlatform,
    source_dir: &Path,
    install_dir: &Path,
) -> Result<PathBuf, String> {
    write_version_header(source_dir)?;
    let lib_src = source_dir.join("src/libsodium");
    let sources = minimal_sources(&lib_src)?;
    let lib_dir = install_dir.join("lib");
    std::fs::create_dir_all(&lib_dir)
        .map_err(|e| format!("cannot create {}: {e}", lib_dir.display()))?;
    let mut build = cc::Build::new();
    build
        .files(&sources)
        .include(lib_src.join("include/sodium"))
        .include(lib_src.join("include"))
        .flag("-pthread")
        .flag("-fvisibility=hidden")
        .flag("-fno-strict-aliasing")
        .flag("-fno-strict-overflow")
        .flag("-fwrapv")
        .flag_if_supported("-flax-vector-conversions")
        .flag("-Wno-unknown-pragmas")
        .warnings(false)
        .out_dir(&lib_dir);
    for (name, value) in platform.defines() {
        build.define(name, value);
    }
    // configure's hardening, where glibc honours it (it needs optimisation).
    if matches!(platform.os, CcOs::Linux) && env::var("OPT_LEVEL").is_ok_and(|o| o != "0") {
        build.define("_FORTIFY_SOURCE", "2");
    }
    // cc prints the library's link lines and the environment it read (CC, CFLAGS, CC_<target>
    // and the like, so that cargo rebuilds when they change); install_from_source does not
    // print the link line again for this library.
    build.try_compile("sodium").map_err(|e| e.to_string())?;
    Ok(lib_dir)
}

// Get the directory where Cargo looks for libraries to link to
fn get_cargo_install_dir() -> PathBuf {
    PathBuf::from(env::var("OUT_DIR").unwrap()).join("installed")
}

// Read the bundled archive (or SODIUM_DIST_DIR's), verify its signature, and return its contents
fn retrieve_and_verify_archive(filename: &str, signature_filename: &str) -> Vec<u8> {
    use minisign_verify::{PublicKey, Signature};
    use std::fs::{self, File};
    use std::io::prelude::*;

    let pk =
        PublicKey::from_base64("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap();

    if let Ok(dist_dir) = env::var("SODIUM_DIST_DIR") {
        let _ = fs::metadata(&dist_dir).expect("SODIUM_DIST_DIR directory does not exist");
        let archive_path = PathBuf::from(&dist_dir).join(filename);
        let signature_path = PathBuf::from(&dist_dir).join(signature_filename);
        let mut archive_bin = vec![];
        File::open(&archive_path)
            .unwrap_or_else(|_| panic!("Failed to open archive [{:?}]", &archive_path))
            .read_to_end(&mut archive_bin)
            .unwrap();
        let signature = Signature::from_file(&signature_path)
            .unwrap_or_else(|_| panic!("Failed to open signature file [{:?}]", &signature_path));
        pk.verify(&archive_bin, &signature, false)
            .expect("Invalid signature");
        return archive_bin;
    }

    let mut archive_bin = vec![];

    let mut download = true;
    if let Ok(mut file) = File::open(filename) {
        if file.read_to_end(&mut archive_bin).is_ok() {
            download = false;
        }
    }
    // loads: no download (the published crate's `fetch-latest` feature and its HTTP client
    // are left out); the archive is the one shipped beside this file, or SODIUM_DIST_DIR's.
    if download {
        panic!(
            "{} was not found beside the build script: set SODIUM_DIST_DIR to a directory \
             that holds it and {}",
            filename, signature_filename
        );
    }
    let signature = Signature::from_file(signature_filename).unwrap();
    pk.verify(&archive_bin, &signature, false)
        .expect("Invalid signature");

    archive_bin
}

// cargo doesn't properly handle #[cfg] and cfg!() in build.rs files,
// so we have to reimplement everything dynamically.

// Install libsodium from source
fn install_from_source() -> Result<(), String> {
    use libflate::gzip::Decoder;
    use std::fs;
    use tar::Archive;

    // Determine build target triple
    let mut target = Target::get().name;
    // Hack for RISC-V; Rust apparently uses a different convention for RISC-V triples
    if target.starts_with("riscv") {
        let mut split = target.split('-');
        let arch = split.next().unwrap();
        let bitness = &arch[5..7];
        let rest = split.collect::<Vec<_>>().join("-");
        target = format!("riscv{bitness}-{rest}");
    }

    // Determine filenames
    let basedir = "libsodium-stable";
    let basename = "LATEST";
    let filename = format!("{basename}.tar.gz");
    let signature_filename = format!("{basename}.tar.gz.minisig");

    // Read source archive from disk (or download if requested) & verify signature
    let archive_bin = retrieve_and_verify_archive(&filename, &signature_filename);

    // Determine source and install dir
    let mut install_dir = get_cargo_install_dir();
    let mut source_dir = PathBuf::from(env::var("OUT_DIR").unwrap()).join("source");

    // Avoid issues with paths containing spaces by falling back to using a tempfile.
    // See https://github.com/jedisct1/libsodium/issues/207
    if install_dir.to_str().unwrap().contains(' ') {
        let fallback_path = PathBuf::from("/tmp/").join(basename).join(&target);
        install_dir = fallback_path.join("installed");
        source_dir = fallback_path.join("source");
        println!(
            "cargo:warning=The path to the usual build directory contains spaces and hence \
             can't be used to build libsodium.  Falling back to use {}.  If running `cargo \
             clean`, ensure you also delete this fallback directory",
            fallback_path.to_str().unwrap()
        );
    }

    // Create directories
    fs::create_dir_all(&install_dir).unwrap();
    fs::create_dir_all(&source_dir).unwrap();

    // Unpack the tarball
    let gz_decoder = Decoder::new(std::io::Cursor::new(archive_bin)).unwrap();
    let mut archive = Archive::new(gz_decoder);
    archive.unpack(&source_dir).unwrap();
    source_dir.push(basedir);

    let cc_platform = CcPlatform::of(&target);
    let lib_dir = if target.contains("-wasi") {
        compile_libsodium_wasm_freestanding(&source_dir, &install_dir)?
    } else if let Some(platform) = cc_platform {
        compile_libsodium_cc(platform, &source_dir, &install_dir)?
    } else {
        compile_libsodium_traditional(&target, &source_dir, &install_dir)?
    };

    if cc_platform.is_some() {
        // cc printed the link line.
    } else if target.contains("msvc") {
        println!("cargo:rustc-link-lib=static=libsodium");
    } else {
        println!("cargo:rustc-link-lib=static=sodium");
    }

    println!(
        "cargo:rustc-link-search=native={}",
        lib_dir.to_str().unwrap()
    );

    let include_dir = source_dir.join("src/libsodium/include");

    println!("cargo:include={}", include_dir.to_str().unwrap());
    println!("cargo:lib={}", lib_dir.to_str().unwrap());

    Ok(())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SODIUM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=SODIUM_SHARED");
    println!("cargo:rerun-if-env-changed=SODIUM_USE_PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=SODIUM_DIST_DIR");
    println!("cargo:rerun-if-env-changed=SODIUM_LDFLAGS");
    // loads: the bundled archive and this script are what the build reads from this package.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=LATEST.tar.gz");
    println!("cargo:rerun-if-changed=LATEST.tar.gz.minisig");
    println!("cargo:rerun-if-env-changed=SODIUM_DISABLE_PIE");
    println!("cargo:rerun-if-env-changed=LOADS_SODIUM_AUTOTOOLS");

    let lib_dir_isset = env::var("SODIUM_LIB_DIR").is_ok();
    let use_pkg_isset = if cfg!(feature = "use-pkg-config") {
        true
    } else {
        env::var("SODIUM_USE_PKG_CONFIG").is_ok()
    };
    let shared_isset = env::var("SODIUM_SHARED").is_ok();

    if lib_dir_isset && use_pkg_isset {
        panic!("SODIUM_LIB_DIR is incompatible with SODIUM_USE_PKG_CONFIG. Set the only one env variable");
    }

    if lib_dir_isset {
        find_libsodium_env();
        return;
    }
    if use_pkg_isset {
        if shared_isset {
            println!("cargo:warning=SODIUM_SHARED has no effect with SODIUM_USE_PKG_CONFIG");
        }
        if !find_libsodium_pkgconfig() {
            panic!("libsodium not found via pkg-config");
        }
        return;
    }
    if shared_isset {
        println!("cargo:warning=SODIUM_SHARED has no effect for building libsodium from source");
    }
    let res = install_from_source();
    if res.is_ok() {
        return;
    }
    // loads: the published crate falls back to precompiled Windows libraries here (in a zip
    // archive, read with the zip crate); loads builds on Unix only, so they are left out.
    if let Err(error) = res {
        panic!(
            "Unable to compile libsodium for target [{}]: [{}]",
            Target::get().name,
            error
        );
    }
}
