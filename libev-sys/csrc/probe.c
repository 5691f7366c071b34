/*
 * Ground truth for libev-sys's own tests, compiled with the same configuration as
 * libev itself:
 *   - libev_sys_probe_layout(): sizeof/offsetof of every watcher struct as the C
 *     compiler lays it out, so the tests can compare bindgen's Rust view with it;
 *   - libev_sys_probe_*(): libev's function-like macros applied by C, so the tests can
 *     compare the Rust equivalents in src/macros.rs with the real thing.
 * Nothing here is meant for users of the crate.
 */
#include <stddef.h>
#include <string.h>
#include "ev_config.h"
#include "ev.h"

struct libev_sys_probe_entry {
  const char *name;
  size_t value;
};

#define S(t) { "sizeof " #t, sizeof (t) }, { "alignof " #t, _Alignof (t) }
#define O(t, f) { #t "." #f, offsetof (t, f) }
#define HDR(t) O(t, active), O(t, pending), O(t, priority), O(t, data), O(t, cb)

static const struct libev_sys_probe_entry entries[] = {
  S(ev_watcher), HDR(ev_watcher),
  S(ev_watcher_list), HDR(ev_watcher_list), O(ev_watcher_list, next),
  S(ev_watcher_time), HDR(ev_watcher_time), O(ev_watcher_time, at),
  S(ev_io), HDR(ev_io), O(ev_io, next), O(ev_io, fd), O(ev_io, events),
  S(ev_timer), HDR(ev_timer), O(ev_timer, at), O(ev_timer, repeat),
  S(ev_periodic), HDR(ev_periodic), O(ev_periodic, at), O(ev_periodic, offset),
    O(ev_periodic, interval), O(ev_periodic, reschedule_cb),
  S(ev_signal), HDR(ev_signal), O(ev_signal, next), O(ev_signal, signum),
  S(ev_child), HDR(ev_child), O(ev_child, next), O(ev_child, flags), O(ev_child, pid),
    O(ev_child, rpid), O(ev_child, rstatus),
  S(ev_stat), HDR(ev_stat), O(ev_stat, next), O(ev_stat, timer), O(ev_stat, interval),
    O(ev_stat, path), O(ev_stat, prev), O(ev_stat, attr), O(ev_stat, wd),
  S(ev_statdata),
  S(ev_idle), HDR(ev_idle),
  S(ev_prepare), HDR(ev_prepare),
  S(ev_check), HDR(ev_check),
  S(ev_fork), HDR(ev_fork),
  S(ev_cleanup), HDR(ev_cleanup),
  S(ev_embed), HDR(ev_embed), O(ev_embed, other), O(ev_embed, io), O(ev_embed, prepare),
    O(ev_embed, check), O(ev_embed, timer), O(ev_embed, periodic), O(ev_embed, idle),
    O(ev_embed, fork), O(ev_embed, cleanup),
  S(ev_async), HDR(ev_async), O(ev_async, sent),
  S(ev_tstamp),
};

const struct libev_sys_probe_entry *
libev_sys_probe_layout (size_t *count)
{
  *count = sizeof (entries) / sizeof (entries[0]);
  return entries;
}

/* libev's macros, applied by the C compiler. */
void libev_sys_probe_ev_init (ev_watcher *w, void (*cb) (struct ev_loop *, ev_watcher *, int)) { ev_init (w, cb); }
int  libev_sys_probe_ev_is_active (ev_watcher *w) { return ev_is_active (w); }
int  libev_sys_probe_ev_is_pending (ev_watcher *w) { return ev_is_pending (w); }
int  libev_sys_probe_ev_priority (ev_watcher *w) { return ev_priority (w); }
void libev_sys_probe_ev_set_priority (ev_watcher *w, int pri) { ev_set_priority (w, pri); }
void *libev_sys_probe_ev_cb (ev_watcher *w) { return (void *) ev_cb (w); }
void libev_sys_probe_ev_set_cb (ev_watcher *w, void (*cb) (struct ev_loop *, ev_watcher *, int)) { ev_set_cb (w, cb); }
void libev_sys_probe_ev_io_set (ev_io *w, int fd, int events) { ev_io_set (w, fd, events); }
void libev_sys_probe_ev_io_modify (ev_io *w, int events) { ev_io_modify (w, events); }
void libev_sys_probe_ev_timer_set (ev_timer *w, ev_tstamp after, ev_tstamp repeat) { ev_timer_set (w, after, repeat); }
void libev_sys_probe_ev_periodic_set (ev_periodic *w, ev_tstamp ofs, ev_tstamp ival,
                                      ev_tstamp (*rcb) (ev_periodic *, ev_tstamp)) { ev_periodic_set (w, ofs, ival, rcb); }
ev_tstamp libev_sys_probe_ev_periodic_at (ev_periodic *w) { return ev_periodic_at (w); }
void libev_sys_probe_ev_signal_set (ev_signal *w, int signum) { ev_signal_set (w, signum); }
void libev_sys_probe_ev_child_set (ev_child *w, int pid, int trace) { ev_child_set (w, pid, trace); }
void libev_sys_probe_ev_stat_set (ev_stat *w, const char *path, ev_tstamp interval) { ev_stat_set (w, path, interval); }
void libev_sys_probe_ev_embed_set (ev_embed *w, struct ev_loop *other) { ev_embed_set (w, other); }
int  libev_sys_probe_ev_async_pending (ev_async *w) { return ev_async_pending (w); }
