/*
 * The one configuration of libev that this crate builds and binds.
 *
 * Both the C build (build.rs compiles libev.c, which includes this file and then
 * vendor/libev/ev.c) and bindgen (which reads wrapper.h, which includes this file and
 * then ev.h) see exactly these defines, so the committed bindings describe the structs
 * the library was compiled with.
 */
#ifndef LIBEV_SYS_EV_CONFIG_H
#define LIBEV_SYS_EV_CONFIG_H

/* No autoconf config.h: every choice is made here. */
#define EV_STANDALONE 1

/* Several loops per process (one per hub thread), each passed explicitly. */
#define EV_MULTIPLICITY 1
/* No libev 3.x compatibility names (ev_loop() the function clashes with struct ev_loop). */
#define EV_COMPAT3 0

/* Every watcher type. */
#define EV_FEATURES 0x7f
#define EV_PERIODIC_ENABLE 1
#define EV_SIGNAL_ENABLE 1
#define EV_CHILD_ENABLE 1
#define EV_STAT_ENABLE 1
#define EV_IDLE_ENABLE 1
#define EV_PREPARE_ENABLE 1
#define EV_CHECK_ENABLE 1
#define EV_EMBED_ENABLE 1
#define EV_FORK_ENABLE 1
#define EV_CLEANUP_ENABLE 1
#define EV_ASYNC_ENABLE 1
#define EV_WALK_ENABLE 0
#define EV_MINPRI (-2)
#define EV_MAXPRI 2

/* Backends: epoll, poll and select everywhere; linuxaio where the kernel offers it
 * (libev probes at run time and never picks it unless asked). io_uring is left out:
 * libev 4.33's io_uring teardown stops an io watcher on an fd it has just closed, which
 * aborts (with assertions) or confuses the loop (without), on every destroy or fork. */
#define EV_USE_EPOLL 1
#define EV_USE_POLL 1
#define EV_USE_SELECT 1
#define EV_USE_LINUXAIO 1
#define EV_USE_IOURING 0
#define EV_USE_KQUEUE 0
#define EV_USE_PORT 0

/* Linux helpers: eventfd for async wake-ups, signalfd for signals, timerfd to notice
 * wall-clock jumps, inotify for stat watchers. */
#define EV_USE_EVENTFD 1
#define EV_USE_SIGNALFD 1
#define EV_USE_TIMERFD 1
#define EV_USE_INOTIFY 1

/* Time: a monotonic clock for timers, nanosleep, floor() for periodics. */
#define EV_USE_MONOTONIC 1
#define EV_USE_REALTIME 0
#define EV_USE_NANOSLEEP 1
#define EV_USE_FLOOR 1

/* Timer heap: 4-ary, with the expiry time cached next to the pointer. */
#define EV_USE_4HEAP 1
#define EV_HEAP_CACHE_AT 1

/* ev_verify() keeps its cheap checks. They are asserts, so they check something only
 * when libev is built without NDEBUG (libev-sys's `libev-asserts` feature; the default
 * build defines NDEBUG, see build.rs). Level 2 would also run them on every watcher
 * start and stop, and assert inside ev_io_stop that the fd is still open: a program
 * that closes an fd before stopping its watcher (dropping a File, say) would then
 * abort instead of getting EV_ERROR. */
#define EV_VERIFY 1

#endif
