//! The access log goes through the `log` facade: one `info` line per answer on the
//! target `gevent_http::ACCESS_LOG`, a refusal at `debug`. (Its own binary: it installs
//! the process's logger.)

mod common;

use common::{on_thread, once, serve};
use gevent_http::{Body, Config, Request, Response, ACCESS_LOG};
use std::sync::Mutex;

static LINES: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if let Ok(mut l) = LINES.lock() {
            l.push((r.level(), r.target().to_owned(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

#[test]
fn each_answer_is_logged_on_the_access_target_and_a_refusal_at_debug() {
    log::set_logger(&Recorder).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    on_thread(|| {
        let s = serve(Config::default(), |_req: Request<Body>| {
            Response::new("12345")
        });
        let (r, _) = once(
            s.server_addr(),
            b"GET /logged?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        let (r, _) = once(s.server_addr(), b"GET / HTTP/2.0\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 505);
        s.stop().unwrap();
    });
    let lines = LINES.lock().unwrap();
    let access: Vec<_> = lines.iter().filter(|(_, t, _)| t == ACCESS_LOG).collect();
    let answer = access
        .iter()
        .find(|(_, _, m)| m.contains("\"GET /logged?x=1 HTTP/1.1\""))
        .unwrap_or_else(|| panic!("no access line for the answer: {access:?}"));
    assert_eq!(answer.0, log::Level::Info);
    // `PEER "REQUEST" STATUS BODY-BYTES SECONDS`
    let fields: Vec<&str> = answer.2.split_whitespace().collect();
    assert!(fields[0].starts_with("127.0.0.1:"), "{}", answer.2);
    assert_eq!(
        &fields[fields.len() - 3..fields.len() - 1],
        ["200", "5"],
        "{}",
        answer.2
    );
    assert!(
        fields[fields.len() - 1].parse::<f64>().is_ok(),
        "{}",
        answer.2
    );
    let refusal = access
        .iter()
        .find(|(_, _, m)| m.contains("refused: 505"))
        .unwrap_or_else(|| panic!("no line for the refusal: {access:?}"));
    assert_eq!(refusal.0, log::Level::Debug);
}
