//! Compiles the vendored libev 4.33 (`vendor/libev`) with the configuration in
//! `csrc/ev_config.h`, and with the `buildtime-bindgen` feature regenerates the
//! bindings from the same configuration.
//!
//! Metadata for dependents (`links = "ev"`): `DEP_EV_INCLUDE` (the directories holding
//! `ev.h` and `ev_config.h`), `DEP_EV_BACKENDS` (the backends compiled in) and
//! `DEP_EV_KNOWN_BACKENDS` (every backend of `src/backend_table.rs`), comma-separated.

use std::env;
use std::path::PathBuf;

// KNOWN: the names of every backend in src/backend_table.rs, the workspace's one list.
macro_rules! backends {
    ($($name:ident = $bit:ident),* $(,)?) => {
        const KNOWN: &[&str] = &[$(stringify!($name)),*];
    };
}
include!("src/backend_table.rs");

/// The backends of [`KNOWN`] that `ev_config.h` (its text) compiles in: those with
/// `#define EV_USE_<NAME> 1`. Each must have its `EV_USE_` line, 0 or 1, so that the
/// table and the configuration cannot drift apart unnoticed.
fn compiled_backends(config: &str) -> Vec<&'static str> {
    KNOWN
        .iter()
        .copied()
        .filter(|name| {
            let define = format!("EV_USE_{}", name.to_ascii_uppercase());
            let value = config.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(define.as_str()))
                    .then(|| words.next().unwrap_or(""))
            });
            match value {
                Some("1") => true,
                Some("0") => false,
                other => panic!(
                    "libev-sys: csrc/ev_config.h must `#define {define}` as 0 or 1 (found {other:?})"
                ),
            }
        })
        .collect()
}

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let csrc = manifest.join("csrc");
    // Inside the workspace the sources are at ../vendor/libev; a packaged crate carries
    // its own copy under vendor/libev.
    let vendor = [
        manifest.join("../vendor/libev"),
        manifest.join("vendor/libev"),
    ]
    .into_iter()
    .find(|p| p.join("ev.c").is_file())
    .unwrap_or_else(|| {
        panic!(
            "libev-sys: cannot find vendor/libev/ev.c next to {}",
            manifest.display()
        )
    });

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        panic!(
            "libev-sys: csrc/ev_config.h configures libev for Linux (epoll, eventfd, signalfd, \
             inotify); target_os `{target_os}` needs its own configuration"
        );
    }

    for f in ["ev_config.h", "libev.c", "probe.c", "wrapper.h"] {
        println!("cargo:rerun-if-changed={}", csrc.join(f).display());
    }
    println!("cargo:rerun-if-changed=src/backend_table.rs");
    let config = std::fs::read_to_string(csrc.join("ev_config.h"))
        .unwrap_or_else(|e| panic!("libev-sys: read csrc/ev_config.h: {e}"));
    let compiled = compiled_backends(&config);
    println!("cargo:rerun-if-changed={}", vendor.display());

    // libev itself. Its own code has warnings on modern compilers (strict aliasing
    // casts, unused values in macros); they are silenced here and only here.
    //
    // NDEBUG: by default libev's assertions are off, as in a distribution build. The
    // safe layer pre-empts every misuse libev would assert on with a typed error; what
    // it cannot pre-empt is the program closing an fd while a watcher is on it, and
    // there libev without assertions does the right thing (epoll_ctl fails with EBADF
    // and the watcher is stopped with EV_ERROR) where with them it aborts. The
    // `libev-asserts` feature leaves NDEBUG out, so that a pre-check that is missing
    // shows up as a libev abort in the test suites. Only the C build sees NDEBUG:
    // bindgen reads ev.h, which does not depend on it, so the bindings are the same.
    let mut libev = cc::Build::new();
    if env::var_os("CARGO_FEATURE_LIBEV_ASSERTS").is_none() {
        libev.define("NDEBUG", None);
    }
    libev
        .file(csrc.join("libev.c"))
        .include(&csrc)
        .include(&vendor)
        .warnings(false)
        .flag_if_supported("-w")
        .flag_if_supported("-fno-strict-aliasing")
        .compile("ev");
    // libm: ev.c uses floor() for periodic watchers.
    println!("cargo:rustc-link-lib=m");

    // The layout and macro probe used by the crate's own tests, with warnings on; only
    // with the `probe` feature, which those tests turn on (see Cargo.toml).
    if env::var_os("CARGO_FEATURE_PROBE").is_some() {
        cc::Build::new()
            .file(csrc.join("probe.c"))
            .include(&csrc)
            .include(&vendor)
            .warnings(true)
            .extra_warnings(true)
            // ev.h's own ev_io_modify macro trips -Wparentheses where it expands.
            .flag_if_supported("-Wno-parentheses")
            .compile("ev_probe");
    }

    println!(
        "cargo:include={}",
        env::join_paths([&csrc, &vendor]).unwrap().to_string_lossy()
    );
    println!("cargo:backends={}", compiled.join(","));
    println!("cargo:known_backends={}", KNOWN.join(","));

    #[cfg(feature = "buildtime-bindgen")]
    bindings::generate(&csrc, &vendor);
}

#[cfg(feature = "buildtime-bindgen")]
mod bindings {
    use std::path::Path;

    /// libev's `#define`d numbers (EV_MINPRI, EV_MAXPRI, EV_VERSION_*) are plain `int`
    /// in C; give them that type in Rust too instead of bindgen's guess from the value.
    #[derive(Debug)]
    struct IntMacros;
    impl bindgen::callbacks::ParseCallbacks for IntMacros {
        fn int_macro(&self, _name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
            Some(bindgen::callbacks::IntKind::Int)
        }
    }

    /// Runs bindgen over `csrc/wrapper.h` (the build configuration, then `ev.h`) and
    /// writes `$OUT_DIR/bindings.rs`. With `LIBEV_SYS_BINDINGS_OUT=path` set, the same
    /// text is also written there: that is how `src/bindings.rs` is refreshed and how
    /// CI checks that the committed file is what bindgen produces today.
    pub fn generate(csrc: &Path, vendor: &Path) {
        println!("cargo:rerun-if-env-changed=LIBEV_SYS_BINDINGS_OUT");
        let out =
            std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("bindings.rs");
        let bindings = bindgen::Builder::default()
            .header(csrc.join("wrapper.h").to_string_lossy())
            .clang_arg(format!("-I{}", csrc.display()))
            .clang_arg(format!("-I{}", vendor.display()))
            .allowlist_function("ev_.*")
            .allowlist_type("ev_.*")
            .allowlist_var("EV[A-Z_]*|ev_.*")
            .blocklist_type("stat|timespec")
            .raw_line("pub use libc::{stat, timespec};")
            .use_core()
            .ctypes_prefix("::core::ffi")
            .derive_debug(false)
            .derive_default(false)
            .layout_tests(true)
            .generate_comments(false)
            .parse_callbacks(Box::new(IntMacros))
            .formatter(bindgen::Formatter::Rustfmt)
            .generate()
            .expect("bindgen failed on csrc/wrapper.h");
        bindings
            .write_to_file(&out)
            .expect("write $OUT_DIR/bindings.rs");
        if let Some(extra) = std::env::var_os("LIBEV_SYS_BINDINGS_OUT") {
            std::fs::copy(&out, &extra).expect("write LIBEV_SYS_BINDINGS_OUT");
        }
    }
}
