//! Build script of the `gevent` facade.
//!
//! It turns what `libev-sys` actually compiled in (its `links = "ev"` metadata:
//! `DEP_EV_BACKENDS`, out of the `DEP_EV_KNOWN_BACKENDS` that `cfg` may name) into
//! `cfg(gevent_backend = "...")` flags and the
//! [`COMPILED_BACKENDS`](crate::COMPILED_BACKENDS) constant, so examples and tests can
//! ask for a backend only where it exists, and it stops a build for an unsupported
//! target here, with a message, rather than deep inside the C compile.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_EV_BACKENDS");
    println!("cargo:rerun-if-env-changed=DEP_EV_KNOWN_BACKENDS");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        eprintln!(
            "error: gevent-rs targets Linux (libev is configured for epoll, eventfd, signalfd \
             and inotify); target_os `{os}` is not supported yet"
        );
        std::process::exit(1);
    }

    // Both lists come from libev-sys (`libev-sys/src/backend_table.rs`), the one place
    // that names the backends.
    let metadata = |key: &str| {
        std::env::var(key).unwrap_or_else(|_| {
            panic!("libev-sys reports its backends through `links = \"ev\"` metadata ({key})")
        })
    };
    let known = metadata("DEP_EV_KNOWN_BACKENDS");
    let known: Vec<&str> = known.split(',').filter(|b| !b.is_empty()).collect();
    let values: Vec<String> = known.iter().map(|b| format!("\"{b}\"")).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(gevent_backend, values({}))",
        values.join(", ")
    );

    let backends = metadata("DEP_EV_BACKENDS");
    for b in backends.split(',').filter(|b| !b.is_empty()) {
        assert!(
            known.contains(&b),
            "libev-sys reported an unknown backend `{b}`"
        );
        println!("cargo:rustc-cfg=gevent_backend=\"{b}\"");
    }
    println!("cargo:rustc-env=GEVENT_COMPILED_BACKENDS={backends}");
}
