#!/usr/bin/env python3
"""The HTTP peer in Python: gevent.pywsgi's WSGIServer (a greenlet per connection),
serving the routes of the http_server example:

  GET /plaintext    200 text/plain        Hello, World!
  GET /json         200 application/json  {"message":"Hello, World!"} (serialised per request)
  POST /echo        200, the request body back
  GET /stream?n=N   200, N lines "line i\\n", chunked (one chunk per line)
  GET /sleep?ms=N   200 "slept N" after N ms (gevent.sleep)
  anything else     404

Usage: http_pywsgi.py [HOST:PORT]   (default 127.0.0.1:8080; a bare port means 127.0.0.1)
"""
import json
import socket
import sys
from urllib.parse import parse_qs

import gevent
from gevent.pywsgi import WSGIServer

PLAINTEXT = b"Hello, World!"


def query_int(environ, key):
    try:
        return int(parse_qs(environ.get("QUERY_STRING", ""))[key][0])
    except (KeyError, ValueError, IndexError):
        return 0


def fixed(start_response, body, content_type):
    start_response(
        "200 OK",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def lines(n):
    for i in range(n):
        yield ("line %d\n" % i).encode()


def app(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if method == "GET" and path == "/plaintext":
        return fixed(start_response, PLAINTEXT, "text/plain")
    if method == "GET" and path == "/json":
        # Serialised for each request, as the example does.
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        return fixed(start_response, body, "application/json")
    if method == "POST" and path == "/echo":
        body = environ["wsgi.input"].read()
        return fixed(start_response, body, "application/octet-stream")
    if method == "GET" and path == "/stream":
        # No Content-Length and a generator: pywsgi sends each item as a chunk.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return lines(query_int(environ, "n"))
    if method == "GET" and path == "/sleep":
        ms = query_int(environ, "ms")
        gevent.sleep(ms / 1000.0)
        return fixed(start_response, ("slept %d" % ms).encode(), "text/plain")
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]


def main(argv):
    host, port = "127.0.0.1", 8080
    if argv:
        if ":" in argv[0]:
            host, _, p = argv[0].rpartition(":")
            port = int(p)
        else:
            port = int(argv[0])
    server = WSGIServer((host, port), app, log=None, backlog=1024)
    server.init_socket()
    # TCP_NODELAY on the listener: Linux hands it down to every accepted connection
    # (pywsgi writes each response on its own; with Nagle's algorithm, pipelined
    # responses after the first would wait for the client's delayed ACK).
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("http_pywsgi on %s:%d" % (host, port), file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
