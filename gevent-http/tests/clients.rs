//! The server against real clients: curl, Python's http.client, and many
//! connections at once.

mod common;

use common::{on_thread, routes, run, serve, Client};
use gevent_http::{Body, Config, Request};
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;

fn url(s: &gevent_http::Server, path: &str) -> String {
    format!("http://{}{path}", s.server_addr())
}

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn curl_gets_every_route() {
    on_thread(|| {
        let s = serve(Config::default(), routes);
        let out = stdout(&run(
            "curl",
            strings(&["-sS", "-i", &url(&s, "/plaintext")]),
        ));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nHello, World!"), "{out}");
        let out = stdout(&run("curl", strings(&["-sS", &url(&s, "/json")])));
        assert_eq!(out, r#"{"message":"Hello, World!"}"#);
        let out = stdout(&run(
            "curl",
            strings(&["-sS", "-i", &url(&s, "/stream?n=4")]),
        ));
        assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\nline 0\nline 1\nline 2\nline 3\n"),
            "{out}"
        );
        let out = stdout(&run("curl", strings(&["-sS", &url(&s, "/sleep?ms=5")])));
        assert_eq!(out, "slept 5");
        let out = stdout(&run(
            "curl",
            strings(&[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url(&s, "/nope"),
            ]),
        ));
        assert_eq!(out, "404");
        let out = stdout(&run(
            "curl",
            strings(&["-sS", "--http1.0", "-i", &url(&s, "/plaintext")]),
        ));
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        let out = stdout(&run(
            "curl",
            strings(&["-sS", "-I", &url(&s, "/plaintext")]),
        ));
        assert!(out.contains("content-length: 13\r\n"), "{out}");
        // Several requests on one connection: curl says it reused it.
        let out = run(
            "curl",
            strings(&["-sS", "-v", &url(&s, "/plaintext"), &url(&s, "/json")]),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Re-using existing connection"), "{err}");
        s.stop().unwrap();
    });
}

/// A 16 MiB body echoed, with and without a length, with curl's `Expect:
/// 100-continue`; the echo is compared by hash.
#[test]
fn curl_posts_16_mib_to_the_echo_and_gets_it_back_whole() {
    on_thread(|| {
        let s = serve(Config::default(), routes);
        let dir = std::env::temp_dir().join(format!("gevent-http-echo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in");
        let data: Vec<u8> = (0..16u64 << 20).map(common::pattern_byte).collect();
        std::fs::File::create(&input)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let want = sha256(&input);
        for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
            let output = dir.join("out");
            let mut args = strings(&["-sS", "-v", "--data-binary"]);
            args.push(format!("@{}", input.display()));
            args.extend(strings(extra));
            args.extend(strings(&[
                "-o",
                output.to_str().unwrap(),
                &url(&s, "/echo"),
            ]));
            let out = run("curl", args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert!(
                err.contains("HTTP/1.1 100 Continue"),
                "curl asked to continue: {err}"
            );
            assert_eq!(sha256(&output), want, "{extra:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        s.stop().unwrap();
    });
}

fn sha256(path: &std::path::Path) -> String {
    let out = stdout(&run("sha256sum", vec![path.display().to_string()]));
    out.split_whitespace().next().unwrap().to_owned()
}

/// 200 requests that each sleep 500 ms are served at once: every one of them has
/// reached its handler before the first has finished.
#[test]
fn two_hundred_concurrent_sleeps_finish_together() {
    on_thread(|| {
        let entered = Rc::new(Cell::new(0u32));
        let entered_at_first_exit = Rc::new(Cell::new(None));
        let (e, f) = (entered.clone(), entered_at_first_exit.clone());
        let s = serve(Config::default(), move |req: Request<Body>| {
            e.set(e.get() + 1);
            let r = routes(req);
            if f.get().is_none() {
                f.set(Some(e.get()));
            }
            r
        });
        let mut args = strings(&["-sS", "-Z", "--parallel-immediate", "--parallel-max", "200"]);
        args.extend(strings(&["-w", "%{http_code}\n", "-o", "/dev/null"]));
        for _ in 0..200 {
            args.push(url(&s, "/sleep?ms=500"));
            args.extend(strings(&["-o", "/dev/null"]));
        }
        let out = stdout(&run("curl", args));
        assert_eq!(out.lines().filter(|l| *l == "200").count(), 200, "{out}");
        assert_eq!(entered.get(), 200);
        assert_eq!(entered_at_first_exit.get(), Some(200));
        s.stop().unwrap();
    });
}

#[test]
fn python_http_client_speaks_with_the_server() {
    on_thread(|| {
        let s = serve(Config::default(), routes);
        let script = r#"
import http.client, sys
host, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection(host, port)
out = []
for path in ("/plaintext", "/json", "/stream?n=3"):
    c.request("GET", path)
    r = c.getresponse()
    out.append("%d %s" % (r.status, r.read().decode()))
c.request("POST", "/echo", body=iter([b"ab", b"cd"]), encode_chunked=True)
r = c.getresponse()
out.append("%d %s %s" % (r.status, r.getheader("transfer-encoding"), r.read().decode()))
c.request("POST", "/echo", body=b"x" * 100000)
r = c.getresponse()
out.append("%d %s %d" % (r.status, r.getheader("content-length"), len(r.read())))
c.request("HEAD", "/plaintext")
r = c.getresponse()
out.append("%d %s %r" % (r.status, r.getheader("content-length"), r.read()))
c.close()
h10 = http.client.HTTPConnection(host, port)
h10._http_vsn, h10._http_vsn_str = 10, "HTTP/1.0"
h10.request("GET", "/plaintext")
r = h10.getresponse()
out.append("%d %s" % (r.status, r.read().decode()))
print("|".join(out))
"#;
        let addr = s.server_addr();
        let out = stdout(&run(
            "python3",
            vec![
                "-c".into(),
                script.into(),
                addr.ip().to_string(),
                addr.port().to_string(),
            ],
        ));
        assert_eq!(
            out.trim(),
            "200 Hello, World!|200 {\"message\":\"Hello, World!\"}|200 line 0\nline 1\nline 2\n\
             |200 chunked abcd|200 100000 100000|200 13 b''|200 Hello, World!"
        );
        s.stop().unwrap();
    });
}

/// A thousand kept-alive connections sit idle; other clients are served meanwhile,
/// and each of the thousand is still served afterwards.
#[test]
fn a_thousand_idle_keep_alive_connections_are_held_while_others_are_served() {
    on_thread(|| {
        gevent_hub::server::raise_fd_limit(4096).unwrap();
        let s = serve(Config::default(), routes);
        let addr = s.server_addr();
        let mut idle: Vec<Client> = (0..1000)
            .map(|_| {
                let mut c = Client::connect(addr);
                c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
                c
            })
            .collect();
        for c in &mut idle {
            assert_eq!(c.response().unwrap().text(), "Hello, World!");
        }
        let mut other = Client::connect(addr);
        for _ in 0..10 {
            other.send(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(other.response().unwrap().status, 200);
        }
        assert_eq!(s.connection_count(), 1001);
        for c in &mut idle {
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        for c in &mut idle {
            assert_eq!(c.response().unwrap().text(), "Hello, World!");
        }
        s.stop().unwrap();
    });
}
