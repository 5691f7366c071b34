//! Build script of the `gevent` facade.
//!
//! It turns what `libev-sys` actually compiled in (its `links = "ev"` metadata,
//! `DEP_EV_BACKENDS`) into `cfg(gevent_backend = "...")` flags and the
//! [`COMPILED_BACKENDS`](crate::COMPILED_BACKENDS) constant, so examples and tests can
//! ask for a backend only where it exists, and it stops a build for an unsupported
//! target here, with a message, rather than deep inside the C compile.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_EV_BACKENDS");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        eprintln!(
            "error: gevent-rs targets Linux (libev is configured for epoll, eventfd, signalfd \
             and inotify); target_os `{os}` is not supported yet"
        );
        std::process::exit(1);
    }

    let known = ["select", "poll", "epoll", "linuxaio", "iouring"];
    let values: Vec<String> = known.iter().map(|b| format!("\"{b}\"")).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(gevent_backend, values({}))",
        values.join(", ")
    );

    let backends = std::env::var("DEP_EV_BACKENDS").expect(
        "libev-sys reports its backends through `links = \"ev\"` metadata (DEP_EV_BACKENDS)",
    );
    for b in backends.split(',').filter(|b| !b.is_empty()) {
        assert!(
            known.contains(&b),
            "libev-sys reported an unknown backend `{b}`"
        );
        println!("cargo:rustc-cfg=gevent_backend=\"{b}\"");
    }
    println!("cargo:rustc-env=GEVENT_COMPILED_BACKENDS={backends}");
}
