//! Build script of `gevent-monkey`: stops a build for a target the hooks are not
//! written for, with a message, instead of a binary whose hooks misread their
//! arguments.
//!
//! The hooks define libc's variadic entry points (`fcntl`, `ioctl`) as plain
//! functions reading a fixed number of arguments, which is sound only where the C
//! calling convention passes variadic arguments like the others (x86_64 System V and
//! AArch64 on Linux), and they find the real functions with glibc's
//! `dlsym(RTLD_NEXT, ..)`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (os, env, arch) = (
        var("CARGO_CFG_TARGET_OS"),
        var("CARGO_CFG_TARGET_ENV"),
        var("CARGO_CFG_TARGET_ARCH"),
    );
    let arch_ok = arch == "x86_64" || arch == "aarch64";
    if os != "linux" || env != "gnu" || !arch_ok {
        eprintln!(
            "error: gevent-monkey supports Linux with glibc on x86_64 and aarch64; this \
             target is {arch}-{os}-{env}. (It interposes glibc's symbols and relies on \
             how those targets pass variadic arguments.)"
        );
        std::process::exit(1);
    }
}
