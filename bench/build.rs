//! Compiles the C peers against the libev that `libev-sys` built: `c/micro_core.c` (the
//! C side of the core micro-benchmarks) and `c/echo_libev.c` (the echo server on raw
//! libev callbacks). Same headers, same `ev_config.h` (so the watcher structs have the
//! layout the library was compiled with), and their `ev_*` symbols resolve against
//! libev-sys's static libev when the benchmark binaries are linked: the C and the Rust
//! sides run the very same libev.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c/micro_core.c");
    println!("cargo:rerun-if-changed=c/echo_libev.c");
    println!("cargo:rerun-if-env-changed=DEP_EV_INCLUDE");

    // libev-sys's `cargo:include=` metadata: the directories holding ev_config.h and
    // ev.h, joined with the platform's path separator (`:`).
    let include = env::var_os("DEP_EV_INCLUDE").expect(
        "libev-sys exports its include directories as `links = \"ev\"` metadata \
         (DEP_EV_INCLUDE); it must be a direct dependency of gevent-bench",
    );

    for dir in env::split_paths(&include) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for name in ["micro_core", "echo_libev"] {
        let mut build = cc::Build::new();
        build.file(format!("c/{name}.c"));
        for dir in env::split_paths(&include) {
            build.include(dir);
        }
        // ev.h's watcher macros (ev_init, ev_set_priority, …) write through an
        // `(ev_watcher *)` cast of the typed watcher: code using them must not let the
        // compiler assume strict aliasing, as libev itself is built.
        build
            .warnings(true)
            .extra_warnings(true)
            .flag_if_supported("-fno-strict-aliasing")
            .compile(name);
    }
}
