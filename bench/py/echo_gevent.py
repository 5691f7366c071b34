#!/usr/bin/env python3
"""The slides' gevent echo server (server_gevent.py), unchanged but for a port argument
and the optional busy loop of "Benchmark 2" (the slides' stress() before sendall).

Usage: echo_gevent.py [PORT] [--busy REPS]
"""
import sys

from gevent.server import StreamServer

from stress import stress


def make_handler(busy):
    def handler(sock, addr):
        try:
            while 1:
                buf = sock.recv(4096)
                if not buf:
                    return
                for _ in range(busy):
                    stress()
                sock.sendall(buf)
        finally:
            sock.close()

    return handler


def main(argv):
    port, busy = 4000, 0
    args = iter(argv)
    for a in args:
        if a == "--busy":
            busy = int(next(args))
        else:
            port = int(a)
    server = StreamServer(("", port), make_handler(busy), backlog=1024)
    print("echo_gevent on port %d (busy %d)" % (port, busy), file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
