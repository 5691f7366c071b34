//! HTTP/1.1 as the server speaks it, checked on the wire with raw sockets:
//! keep-alive, pipelining, HTTP/1.0, HEAD, bodies both ways, 100-continue, upgrades,
//! the protective limits and the graceful stop.

mod common;

use common::{on_thread, once, serve, Client};
use gevent_http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use gevent_http::{Body, Config, Request, Response, ResponseBody, StatusCode};
use gevent_hub::sync::Event;
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

/// Answers with the request's method, path and body, and counts the requests.
fn echo_handler(count: Rc<Cell<u32>>) -> impl Fn(Request<Body>) -> Response<String> {
    move |mut req: Request<Body>| {
        count.set(count.get() + 1);
        let mut body = String::new();
        req.body_mut().read_to_string(&mut body).expect("read body");
        let trailers = req
            .body()
            .trailers()
            .map(|t| {
                let mut v: Vec<String> = t
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
                    .collect();
                v.sort();
                format!(" trailers[{}]", v.join(","))
            })
            .unwrap_or_default();
        Response::new(format!(
            "{} {} {body}{trailers}",
            req.method(),
            req.uri().path()
        ))
    }
}

fn basic() -> gevent_http::Server {
    serve(Config::default(), echo_handler(Rc::new(Cell::new(0))))
}

#[test]
fn keep_alive_serves_requests_one_after_another_on_one_connection() {
    on_thread(|| {
        let count = Rc::new(Cell::new(0));
        let s = serve(Config::default(), echo_handler(count.clone()));
        let mut c = Client::connect(s.server_addr());
        for i in 0..5 {
            c.send(format!("GET /r{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            let r = c.response().expect("response");
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), format!("GET /r{i} "));
            assert_eq!(r.header("connection"), None);
            let date = r.header("date").expect("a Date header");
            assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        }
        assert_eq!(count.get(), 5);
        assert_eq!(s.connection_count(), 1);
        s.stop().unwrap();
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    on_thread(|| {
        let s = basic();
        let mut c = Client::connect(s.server_addr());
        let mut all = Vec::new();
        for i in 0..20 {
            all.extend_from_slice(
                format!("POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{i:02}")
                    .as_bytes(),
            );
        }
        all.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.send(&all);
        for i in 0..20 {
            let r = c.response().expect("response");
            assert_eq!(r.text(), format!("POST /p{i} {i:02}"));
        }
        let last = c.response().expect("last response");
        assert_eq!(last.text(), "GET /last ");
        assert_eq!(last.header("connection"), Some("close"));
        assert!(c.closed());
        s.stop().unwrap();
    });
}

#[test]
fn http10_closes_unless_it_asks_for_keep_alive() {
    on_thread(|| {
        let s = basic();
        let (r, closed) = once(s.server_addr(), b"GET /a HTTP/1.0\r\n\r\n");
        assert_eq!(
            (r.status, r.text().as_str(), closed),
            (200, "GET /a ", true)
        );
        assert_eq!(r.header("connection"), None);

        let mut c = Client::connect(s.server_addr());
        c.send(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.header("connection"), Some("keep-alive"));
        c.send(b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(c.response().unwrap().text(), "GET /c ");
        c.send(b"GET /d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(c.response().unwrap().header("connection"), Some("close"));
        assert!(c.closed());
        s.stop().unwrap();
    });
}

#[test]
fn an_http10_client_gets_a_body_of_unknown_length_delimited_by_the_close() {
    on_thread(|| {
        let s = serve(Config::default(), |_req: Request<Body>| {
            Response::new(ResponseBody::from_chunks(["ab", "cd"]))
        });
        let (r, closed) = once(
            s.server_addr(),
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.text(), "abcd");
        assert!(closed);
        s.stop().unwrap();
    });
}

#[test]
fn head_gets_the_headers_of_get_and_never_a_body() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            if req.uri().path() == "/declared" {
                let mut r = Response::new(ResponseBody::empty());
                r.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from_static("1234"));
                r
            } else if req.uri().path() == "/stream" {
                Response::new(ResponseBody::from_chunks(["never", "sent"]))
            } else {
                Response::new(ResponseBody::from("Hello, World!"))
            }
        });
        let mut c = Client::connect(s.server_addr());
        for (path, length) in [
            ("/", Some("13")),
            ("/declared", Some("1234")),
            ("/stream", None),
        ] {
            c.send(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            c.head_next = true;
            let r = c.response().unwrap();
            assert_eq!(r.header("content-length"), length, "{path}");
            assert_eq!(r.header("transfer-encoding"), None, "{path}");
        }
        // Nothing followed the heads: the next response starts right at its status line.
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().unwrap().text(), "Hello, World!");
        s.stop().unwrap();
    });
}

#[test]
fn no_content_and_not_modified_carry_no_body() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            let mut r = Response::new("ignored");
            *r.status_mut() = if req.uri().path() == "/204" {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::NOT_MODIFIED
            };
            r
        });
        let mut c = Client::connect(s.server_addr());
        c.send(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.response().unwrap();
        let b = c.response().unwrap();
        assert_eq!((a.status, b.status), (204, 304));
        assert_eq!(a.header("content-length"), None);
        c.send(b"GET /204 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(c.response().unwrap().status, 204);
        assert!(c.closed(), "no body bytes followed");
        s.stop().unwrap();
    });
}

#[test]
fn chunked_request_bodies_with_extensions_and_trailers() {
    on_thread(|| {
        let s = basic();
        let mut c = Client::connect(s.server_addr());
        c.send(
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Check: 11\r\nX-Other: b\r\n\r\n",
        );
        let r = c.response().unwrap();
        assert_eq!(
            r.text(),
            "POST /up hello world trailers[x-check=11,x-other=b]"
        );
        // The connection is in step for the next request.
        c.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().unwrap().text(), "GET /next ");
        s.stop().unwrap();
    });
}

#[test]
fn a_chunked_body_arriving_a_byte_at_a_time_is_read_whole() {
    on_thread(|| {
        let s = basic();
        let mut c = Client::connect(s.server_addr());
        c.send(b"POST /slow HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        for b in b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n" {
            c.send(&[*b]);
        }
        assert_eq!(
            c.response().unwrap().text(),
            "POST /slow abc0123456789abcdef"
        );
        s.stop().unwrap();
    });
}

#[test]
fn expect_100_continue_is_answered_when_the_handler_reads() {
    on_thread(|| {
        let s = serve(Config::default(), |mut req: Request<Body>| {
            if req.uri().path() == "/reads" {
                let mut body = String::new();
                req.body_mut().read_to_string(&mut body).unwrap();
                Response::new(format!("got {body}"))
            } else {
                let mut r = Response::new("no thanks".to_owned());
                *r.status_mut() = StatusCode::FORBIDDEN;
                r
            }
        });
        // The client waits for the 100 before it sends the body.
        let mut c = Client::connect(s.server_addr());
        c.send(
            b"POST /reads HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        );
        let interim = c.response().unwrap();
        assert_eq!(interim.status, 100);
        c.send(b"data");
        let r = c.response().unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "got data"));

        // A handler that never reads: no 100, the answer, and the connection closes
        // (the client may never send the body it was not asked for).
        c.send(b"POST /refuses HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
        s.stop().unwrap();
    });
}

#[test]
fn expect_100_continue_comes_before_the_head_of_an_echo_of_the_body() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            Response::new(ResponseBody::from(req.into_body()))
        });
        let mut c = Client::connect(s.server_addr());
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(c.response().unwrap().status, 100);
        c.send(b"hello");
        let r = c.response().unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        s.stop().unwrap();
    });
}

#[test]
fn a_body_the_handler_leaves_unread_is_read_past_or_the_connection_closes() {
    on_thread(|| {
        let config = Config {
            max_drain_bytes: 1000,
            ..Config::default()
        };
        let s = serve(config, |_req: Request<Body>| {
            Response::new("ignored the body")
        });
        let mut c = Client::connect(s.server_addr());
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        for _ in 0..3 {
            let r = c.response().unwrap();
            assert_eq!(r.header("connection"), None);
        }
        // Over the drain bound: the answer says close, and the rest is not read.
        let big = vec![b'x'; 5000];
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
        c.send(&big);
        let r = c.response().unwrap();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
        s.stop().unwrap();
    });
}

#[test]
fn streamed_responses_from_readers_and_chunks() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            match req.uri().path() {
                "/reader" => Response::new(ResponseBody::from_reader(
                    std::io::repeat(b'r').take(200_000),
                )),
                "/sized" => Response::new(ResponseBody::from_reader_with_len(
                    std::io::repeat(b's').take(1_000_000),
                    70_000,
                )),
                "/chunks" => Response::new(ResponseBody::from_chunks(
                    (0..100).map(|i| format!("line {i}\n")),
                )),
                _ => Response::new(ResponseBody::from_reader(std::io::empty())),
            }
        });
        let mut c = Client::connect(s.server_addr());
        c.send(b"GET /reader HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.body, vec![b'r'; 200_000]);
        c.send(b"GET /sized HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response().unwrap();
        assert_eq!(r.header("content-length"), Some("70000"));
        assert_eq!(r.body, vec![b's'; 70_000]);
        c.send(b"GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n");
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(c.response().unwrap().text(), want);
        c.send(b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().unwrap().body, b"");
        s.stop().unwrap();
    });
}

#[test]
fn a_sized_reader_that_ends_early_cuts_the_connection() {
    on_thread(|| {
        let s = serve(Config::default(), |_req: Request<Body>| {
            Response::new(ResponseBody::from_reader_with_len(&b"short"[..], 100))
        });
        let mut c = Client::connect(s.server_addr());
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut all = Vec::new();
        c.sock.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.contains("content-length: 100\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nshort"), "{text}");
        s.stop().unwrap();
    });
}

/// Each raw request, the status it must get, and that the connection then closes.
#[test]
fn malformed_and_ambiguous_requests_are_refused_and_their_connection_closed() {
    on_thread(|| {
        let config = Config {
            max_body_bytes: Some(100),
            ..Config::default()
        };
        let s = serve(config, echo_handler(Rc::new(Cell::new(0))));
        let huge_header = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        );
        let huge_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70 * 1024));
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("garbage", b"\x16\x03\x01 hello\r\n\r\n".to_vec(), 400),
            ("no version", b"GET /\r\n\r\n".to_vec(), 400),
            ("space in name", b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n".to_vec(), 400),
            ("space before colon", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc".to_vec(), 400),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
            ("no host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
            ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
            (
                "CL and TE",
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
                400,
            ),
            (
                "two lengths",
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
                400,
            ),
            ("bad length", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".to_vec(), 400),
            ("negative length", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n".to_vec(), 400),
            (
                "chunked not last",
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n".to_vec(),
                400,
            ),
            ("TE in 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
            (
                "bad chunk",
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                400,
            ),
            ("unknown coding", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
            ("HTTP/0.9-ish", b"GET / HTTP/9\r\nHost: t\r\n\r\n".to_vec(), 505),
            ("expectation", b"GET / HTTP/1.1\r\nHost: t\r\nExpect: x\r\n\r\n".to_vec(), 417),
            ("huge header", huge_header.into_bytes(), 431),
            ("huge request line", huge_line.into_bytes(), 414),
            ("body over limit", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n".to_vec(), 413),
            (
                "chunked body over limit",
                [
                    &b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"[..],
                    &[b'x'; 101],
                    b"\r\n0\r\n\r\n",
                ]
                .concat(),
                413,
            ),
        ];
        for (name, raw, want) in cases {
            let (r, closed) = once(s.server_addr(), &raw);
            assert_eq!(r.status, want, "{name}: {}", r.text());
            assert_eq!(r.header("connection"), Some("close"), "{name}");
            assert!(closed, "{name}: the connection stays open");
        }
        // And the server still serves.
        let (r, _) = once(
            s.server_addr(),
            b"GET /fine HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.text(), "GET /fine ");
        s.stop().unwrap();
    });
}

#[test]
fn a_refusal_comes_after_the_answers_to_the_requests_before_it() {
    on_thread(|| {
        let s = basic();
        let mut c = Client::connect(s.server_addr());
        c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/7.0\r\n\r\n");
        assert_eq!(c.response().unwrap().text(), "GET /1 ");
        assert_eq!(c.response().unwrap().text(), "GET /2 ");
        assert_eq!(c.response().unwrap().status, 505);
        assert!(c.closed());
        s.stop().unwrap();
    });
}

#[test]
fn a_bad_request_or_a_panicking_handler_does_not_disturb_other_connections() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            if req.uri().path() == "/panic" {
                panic!("handler bug");
            }
            Response::new("fine")
        });
        let mut a = Client::connect(s.server_addr());
        a.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(a.response().unwrap().text(), "fine");

        let (r, closed) = once(s.server_addr(), b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status, closed), (500, true));
        let (r, closed) = once(s.server_addr(), b"BROKEN\r\n\r\n");
        assert_eq!((r.status, closed), (400, true));

        a.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(a.response().unwrap().text(), "fine");
        s.stop().unwrap();
    });
}

#[test]
fn a_slow_client_is_cut_off_at_the_head_deadline_while_others_are_served() {
    on_thread(|| {
        let config = Config {
            header_read_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let served = Rc::new(Cell::new(0));
        let s = serve(config, echo_handler(served.clone()));
        let addr = s.server_addr();
        // Slowloris: a byte at a time, never finishing the head. The deadline runs
        // from the first byte, not from each read.
        let seen_served = Rc::new(Cell::new(None));
        let seen = seen_served.clone();
        let n = served.clone();
        let slow = gevent_hub::spawn(move || {
            let mut c = Client::connect(addr);
            for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "
                .iter()
                .chain([b'a'; 1000].iter())
            {
                if c.sock.write_all(&[*b]).is_err() {
                    break;
                }
                if gevent_hub::try_sleep(Duration::from_millis(5)).is_err() {
                    break;
                }
                if seen.get().is_none() && n.get() > 0 {
                    seen.set(Some(n.get()));
                }
                if !c.pending().is_empty() {
                    break;
                }
                // A response arrived (the sleep lets the read below see it).
                let mut probe = [0u8; 1];
                if c.sock.peek(&mut probe).is_ok() {
                    break;
                }
            }
            c.response().map(|r| r.status)
        });
        // Meanwhile, ordinary clients are served.
        for i in 0..3 {
            let (r, _) = once(
                addr,
                format!("GET /quick{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert_eq!(r.status, 200);
        }
        assert_eq!(slow.join().unwrap(), Some(408));
        assert_eq!(
            served.get(),
            3,
            "the slow request never reached the handler"
        );
        s.stop().unwrap();
    });
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    on_thread(|| {
        let config = Config {
            keep_alive_timeout: Some(Duration::from_millis(50)),
            ..Config::default()
        };
        let s = serve(config, echo_handler(Rc::new(Cell::new(0))));
        let mut c = Client::connect(s.server_addr());
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response().unwrap().status, 200);
        // No request follows: the server closes without a word.
        assert!(c.response().is_none());
        s.stop().unwrap();
    });
}

#[test]
fn an_upgrade_hands_the_connection_to_the_handler() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            let wants = req.headers().get("upgrade").is_some_and(|v| v == "shout");
            if !wants {
                return Response::new(ResponseBody::from("plain"));
            }
            let mut r = Response::new(ResponseBody::upgrade(|mut conn| {
                // An uppercasing echo, until the client closes.
                let mut buf = [0u8; 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let up = buf[..n].to_ascii_uppercase();
                            if conn.write_all(&up).is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("connection", HeaderValue::from_static("upgrade"));
            r.headers_mut()
                .insert("upgrade", HeaderValue::from_static("shout"));
            r
        });
        let mut c = Client::connect(s.server_addr());
        // The first bytes of the new protocol come in the same write as the request.
        c.send(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: shout\r\n\r\nhello ",
        );
        let r = c.response().unwrap();
        assert_eq!(r.status, 101);
        assert_eq!(r.header("upgrade"), Some("shout"));
        assert_eq!(r.header("connection"), Some("upgrade"));
        c.send(b"world");
        let mut got = c.pending().to_vec();
        while got.len() < 11 {
            let mut buf = [0u8; 64];
            let n = c.sock.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"HELLO WORLD");
        s.stop().unwrap();
    });
}

#[test]
fn a_graceful_stop_closes_idle_connections_at_once_and_lets_requests_finish() {
    on_thread(|| {
        let release = Event::new();
        let entered = Event::new();
        let (r2, e2) = (release.clone(), entered.clone());
        let s = serve(Config::default(), move |req: Request<Body>| {
            if req.uri().path() == "/wait" {
                e2.set();
                r2.wait().unwrap();
            }
            Response::new("done")
        });
        let addr = s.server_addr();
        let mut idle = Client::connect(addr);
        idle.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(idle.response().unwrap().text(), "done");

        let busy = gevent_hub::spawn(move || {
            let mut c = Client::connect(addr);
            c.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.response();
            (r, c.closed())
        });
        entered.wait().unwrap();
        let s2 = s.clone();
        let stopper = gevent_hub::spawn(move || s2.stop_timeout(Duration::from_secs(30)));
        // The idle connection closes before the busy request is released: the stop
        // did not wait out its grace period (30 s) or kill it.
        assert!(idle.response().is_none());
        release.set();
        let (r, closed) = busy.join().unwrap();
        let r = r.expect("the request in flight got its answer");
        assert_eq!(r.text(), "done");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(closed);
        let report = stopper.join().unwrap().unwrap();
        assert_eq!((report.finished, report.killed), (2, 0));
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "the listener is closed"
        );
    });
}

/// The head deadline keeps holding while a stop waits for its grace period: a client
/// that connected and sends nothing is cut off with 408, and the stop returns, even
/// with a grace of an hour.
#[test]
fn a_stop_still_cuts_off_a_silent_client_at_the_head_deadline() {
    on_thread(|| {
        let cfg = Config {
            header_read_timeout: Some(Duration::from_millis(100)),
            ..Config::default()
        };
        let s = serve(cfg, |_req: Request<Body>| Response::new("done"));
        let addr = s.server_addr();
        let mut silent = Client::connect(addr);
        silent.send(b"GET / HTTP/1.1\r\n");
        // Accepted after the silent one: once it is answered, the silent one's
        // greenlet has run and waits for the rest of its head.
        let mut other = Client::connect(addr);
        other.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(other.response().unwrap().text(), "done");
        assert_eq!(s.connection_count(), 2);
        let s2 = s.clone();
        let stopper = gevent_hub::spawn(move || s2.stop_timeout(Duration::from_secs(3600)));
        let r = silent.response().expect("a refusal");
        assert_eq!(r.status, 408);
        assert!(other.response().is_none(), "the idle connection was closed");
        let report = stopper.join().unwrap().unwrap();
        assert_eq!((report.finished, report.killed), (2, 0));
    });
}

#[test]
fn content_type_and_other_handler_headers_are_sent_as_given() {
    on_thread(|| {
        let s = serve(Config::default(), |_req: Request<Body>| {
            let mut r = Response::new(r#"{"ok":true}"#);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .append("x-many", HeaderValue::from_static("1"));
            r.headers_mut()
                .append("x-many", HeaderValue::from_static("2"));
            // Framing headers are the server's: a wrong length is not sent.
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
            r
        });
        let (r, _) = once(
            s.server_addr(),
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-length"), Some("11"));
        let many: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n == "x-many")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(many, ["1", "2"]);
        s.stop().unwrap();
    });
}

#[test]
fn a_configuration_that_cannot_work_is_refused() {
    on_thread(|| {
        let zero = Config {
            keep_alive_timeout: Some(Duration::ZERO),
            ..Config::default()
        };
        let e = gevent_http::Server::with_config("127.0.0.1:0", zero, |_r: Request<Body>| {
            Response::new("")
        })
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("keep_alive_timeout"), "{e}");
    });
}

/// Header maps and the read buffer are kept from request to request on a connection:
/// each request still sees only its own fields, and each response carries only its
/// own, whatever the sizes before it (some maps grow past what is kept, heads of
/// varying length move the buffer's room around).
#[test]
fn each_request_on_a_kept_alive_connection_sees_only_its_own_headers() {
    on_thread(|| {
        let s = serve(Config::default(), |req: Request<Body>| {
            let mut names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            let body = names.join(",");
            let i: usize = req.uri().path()[1..].parse().expect("a number path");
            let mut r = Response::new(body);
            let distinct = if i % 10 == 3 { 0 } else { i % 55 };
            for k in 0..distinct {
                r.headers_mut().insert(
                    gevent_http::header::HeaderName::try_from(format!("x-resp-{i}-{k}"))
                        .expect("a name"),
                    HeaderValue::from_static("v"),
                );
            }
            if i % 10 == 3 {
                // Many values under one name, in a map of small capacity: too many
                // to be kept.
                let name = gevent_http::header::HeaderName::try_from(format!("x-resp-{i}-many"))
                    .expect("a name");
                for _ in 0..50 {
                    r.headers_mut()
                        .append(name.clone(), HeaderValue::from_static("m"));
                }
            }
            r
        });
        let mut c = Client::connect(s.server_addr());
        let request = |i: usize| {
            let mut raw = format!("GET /{i} HTTP/1.1\r\nHost: t\r\n");
            for k in 0..i % 13 {
                raw.push_str(&format!("x-req-{i}-{k}: {}\r\n", "p".repeat(i * 37 % 3000)));
            }
            raw.push_str("\r\n");
            raw
        };
        for batch in (0..300).collect::<Vec<_>>().chunks(20) {
            let all: String = batch.iter().map(|&i| request(i)).collect();
            c.send(all.as_bytes());
            for &i in batch {
                let r = c.response().expect("response");
                assert_eq!(r.status, 200, "request {i}");
                let mut want: Vec<String> = (0..i % 13).map(|k| format!("x-req-{i}-{k}")).collect();
                want.push("host".into());
                want.sort_unstable();
                assert_eq!(r.text(), want.join(","), "request {i}");
                let extra: Vec<&str> = r
                    .headers
                    .iter()
                    .filter(|(n, _)| n.starts_with("x-"))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let want = if i % 10 == 3 { 50 } else { i % 55 };
                assert_eq!(extra.len(), want, "response {i}: {extra:?}");
                assert!(
                    extra.iter().all(|n| n.starts_with(&format!("x-resp-{i}-"))),
                    "response {i}: {extra:?}"
                );
            }
        }
        s.stop().unwrap();
    });
}
