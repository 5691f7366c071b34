/*
 * The translation unit build.rs compiles: libev's own embedding recipe (ev.pod,
 * "EMBEDDING"): set the configuration, then include ev.c, which includes the
 * backend files it needs. The vendored sources stay untouched.
 */
#include "ev_config.h"
#include "ev.c"

/*
 * Control over the default loop's SIGCHLD watcher.
 *
 * ev_default_loop() starts an internal signal watcher (`childev`, static in ev.c) that
 * reaps *every* child with waitpid(-1) so that ev_child watchers can see them. That
 * also steals the exit status from any other waiter in the process (for example
 * std::process::Child::wait, which then fails with ECHILD). These two functions let
 * the safe layer make child reaping opt-in: stop it when the default loop is created,
 * start it while at least one child watcher is active. They keep libev's own
 * reference counting as ev_default_loop() and ev_loop_destroy() do.
 */
int
libev_sys_child_reaping_active (void)
{
  return ev_is_active (&childev);
}

void
libev_sys_child_reaping_stop (struct ev_loop *loop)
{
  if (loop == ev_default_loop_ptr && ev_is_active (&childev))
    {
      ev_ref (loop);
      ev_signal_stop (loop, &childev);
    }
}

void
libev_sys_child_reaping_start (struct ev_loop *loop)
{
  if (loop == ev_default_loop_ptr && !ev_is_active (&childev) && ev_cb (&childev))
    {
      ev_signal_start (loop, &childev);
      ev_unref (loop);
    }
}
