#!/usr/bin/env python3
"""The slides' threaded echo server ("blocking with threading", echo_simple.py): one
thread per connection. Differences from the slides: a port argument, listen(1024)
instead of listen(50) (every server of the suite gets the same backlog), recv(4096)
as the gevent handler, daemon threads, and the busy loop of "Benchmark 2" (the slides'
stress() before sendall) behind --busy, where echo_simple.py always ran it.

Usage: echo_threads.py [PORT] [--busy REPS]
"""
import socket
import sys
import threading

from stress import stress


def echo(sock, busy):
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            for _ in range(busy):
                stress()
            sock.sendall(data)
    except OSError:
        pass
    finally:
        sock.close()


def serve(addr, busy):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(1024)
    print("echo_threads.py on port %d (busy %d)" % (addr[1], busy), file=sys.stderr)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=echo, args=(conn, busy), daemon=True).start()


def main(argv):
    port, busy = 4000, 0
    args = iter(argv)
    for a in args:
        if a == "--busy":
            busy = int(next(args))
        else:
            port = int(a)
    serve(("0.0.0.0", port), busy)


if __name__ == "__main__":
    main(sys.argv[1:])
