/*
 * The echo server in C on raw libev callbacks, against the same vendored libev that
 * gevent-rs runs on (libev-sys's build, same ev_config.h): the yardstick for the
 * `echo_server` example. Built into a static library by build.rs and started by
 * src/bin/echo_libev.rs, which only calls c_echo_main.
 *
 * Usage: echo_libev [PORT] [--busy REPS]
 *
 * What a C programmer would write: a listening io watcher that accepts until EAGAIN
 * (accept4, non-blocking, close-on-exec), and per connection a read watcher that stays
 * started. On readable: one recv into a 4096-byte buffer (the example's handler reads
 * 4096 too), the optional busy loop, one send; only if the send is partial does the
 * connection stop reading and wait for writability. EOF or an error closes it.
 * SIGTERM/SIGINT stop the loop (so strace can print its summary).
 *
 * `--busy REPS` runs the slides' busy loop (stress.py: 100 times rec(100)) REPS times
 * before each send: gevent_bench::stress, the very function the Rust servers call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "ev_config.h"
#include "ev.h"

#define BUF_SIZE 4096

struct conn
{
  ev_io r, w;
  size_t len, off; /* unsent bytes are buf[off..len] */
  char buf[BUF_SIZE];
};

static unsigned busy_reps;

/* The busy loop of S2-busy: gevent_bench::stress, in the Rust library this is linked
   with, so that the C server runs the same machine code as the Rust servers. */
extern void gevent_bench_stress (unsigned reps);

static void
conn_close (struct ev_loop *loop, struct conn *c)
{
  ev_io_stop (loop, &c->r);
  ev_io_stop (loop, &c->w);
  close (c->r.fd);
  free (c);
}

/* Sends buf[off..len]. Returns 0 when all is sent, 1 when the rest must wait for
   writability, -1 on error. */
static int
conn_flush (struct conn *c)
{
  while (c->off < c->len)
    {
      ssize_t n = send (c->r.fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
      if (n >= 0)
        c->off += (size_t)n;
      else if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 1;
      else if (errno != EINTR)
        return -1;
    }
  return 0;
}

static void
write_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct conn *c = (struct conn *)((char *)w - offsetof (struct conn, w));
  int r;

  (void)revents;
  r = conn_flush (c);
  if (r < 0)
    conn_close (loop, c);
  else if (r == 0)
    {
      ev_io_stop (loop, &c->w);
      ev_io_start (loop, &c->r);
    }
}

static void
read_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  struct conn *c = (struct conn *)w; /* r is the first member */
  ssize_t n;
  int r;

  (void)revents;
  n = recv (w->fd, c->buf, BUF_SIZE, 0);
  if (n <= 0)
    {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
      conn_close (loop, c);
      return;
    }
  if (busy_reps)
    gevent_bench_stress (busy_reps);
  c->len = (size_t)n;
  c->off = 0;
  r = conn_flush (c);
  if (r < 0)
    conn_close (loop, c);
  else if (r > 0)
    {
      /* The peer is not reading: stop reading until what we owe is sent. */
      ev_io_stop (loop, &c->r);
      ev_io_start (loop, &c->w);
    }
}

static void
accept_cb (struct ev_loop *loop, ev_io *w, int revents)
{
  (void)revents;
  for (;;)
    {
      struct conn *c;
      int fd = accept4 (w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK)
            perror ("accept4");
          return;
        }
      c = malloc (sizeof *c);
      if (!c)
        {
          close (fd);
          continue;
        }
      ev_io_init (&c->r, read_cb, fd, EV_READ);
      ev_io_init (&c->w, write_cb, fd, EV_WRITE);
      ev_io_start (loop, &c->r);
    }
}

static void
stop_cb (struct ev_loop *loop, ev_signal *w, int revents)
{
  (void)w; (void)revents;
  ev_break (loop, EVBREAK_ALL);
}

int
c_echo_main (int argc, char **argv)
{
  struct ev_loop *loop = ev_default_loop (EVFLAG_AUTO);
  struct sockaddr_in sa;
  ev_io accept_w;
  ev_signal sigterm, sigint;
  int port = 4000, fd, one = 1, i;

  for (i = 1; i < argc; ++i)
    {
      if (!strcmp (argv[i], "--busy") && i + 1 < argc)
        busy_reps = (unsigned)strtoul (argv[++i], NULL, 10);
      else
        port = atoi (argv[i]);
    }
  if (!loop)
    {
      fprintf (stderr, "echo_libev: cannot create the loop\n");
      return 1;
    }
  fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      perror ("socket");
      return 1;
    }
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset (&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons ((unsigned short)port);
  sa.sin_addr.s_addr = htonl (INADDR_ANY);
  if (bind (fd, (struct sockaddr *)&sa, sizeof sa) || listen (fd, 1024))
    {
      perror ("bind/listen");
      return 1;
    }
  ev_io_init (&accept_w, accept_cb, fd, EV_READ);
  ev_io_start (loop, &accept_w);
  ev_signal_init (&sigterm, stop_cb, SIGTERM);
  ev_signal_start (loop, &sigterm);
  ev_signal_init (&sigint, stop_cb, SIGINT);
  ev_signal_start (loop, &sigint);
  fprintf (stderr, "echo_libev on port %d (backend %u, busy %u)\n", port,
           ev_backend (loop), busy_reps);
  ev_run (loop, 0);
  close (fd);
  return 0;
}
