// The I/O backends libev 4.33 has on Linux: each one's name (as libev and gevent spell
// it) and its EVBACKEND_* bit. This is the one list of them in the workspace.
//
// Not a module: `build.rs` and `lib.rs` both `include!` it, each after defining its own
// `backends!` macro. The build script takes the names, looks up which of them
// `csrc/ev_config.h` compiles in (`#define EV_USE_<NAME> 1`), and reports both lists as
// `links` metadata (DEP_EV_BACKENDS, DEP_EV_KNOWN_BACKENDS); the library makes
// `libev_sys::BACKENDS`, the table gevent-core parses backend names with.
backends! {
    select = EVBACKEND_SELECT,
    poll = EVBACKEND_POLL,
    epoll = EVBACKEND_EPOLL,
    linuxaio = EVBACKEND_LINUXAIO,
    iouring = EVBACKEND_IOURING,
}
