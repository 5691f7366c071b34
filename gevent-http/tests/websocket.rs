//! A WebSocket over an upgraded connection: tungstenite takes the `Upgraded` as its
//! raw socket on the server, and a tungstenite client talks to it.

mod common;

use common::{on_thread, serve};
use gevent_http::header::HeaderValue;
use gevent_http::{Body, Config, Request, Response, ResponseBody, StatusCode};
use gevent_hub::net::TcpStream;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// The handshake's answer (RFC 6455, 4.2.2), then an echo of every message.
fn websocket_echo(req: Request<Body>) -> Response<ResponseBody> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec());
    let upgrade = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let (Some(key), true) = (key, upgrade) else {
        let mut r = Response::new(ResponseBody::from("a WebSocket endpoint\n"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let mut r = Response::new(ResponseBody::upgrade(|conn| {
        let mut ws = WebSocket::from_raw_socket(conn, Role::Server, None);
        loop {
            match ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                    if ws.send(m).is_err() {
                        return;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    let accept = tungstenite::handshake::derive_accept_key(&key);
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept).unwrap(),
    );
    r
}

#[test]
fn tungstenite_runs_a_websocket_over_an_upgraded_connection() {
    on_thread(|| {
        let s = serve(Config::default(), websocket_echo);
        let addr = s.server_addr();
        // Two clients at once, each in its own greenlet: the hub serves both.
        let clients: Vec<_> = (0..2)
            .map(|c| {
                gevent_hub::spawn(move || {
                    let stream = TcpStream::connect(addr).unwrap();
                    let (mut ws, resp) =
                        tungstenite::client::client(format!("ws://{addr}/ws"), stream)
                            .unwrap_or_else(|e| panic!("handshake: {e}"));
                    assert_eq!(resp.status(), 101);
                    let mut got = Vec::new();
                    for i in 0..5 {
                        ws.send(Message::text(format!("client {c} message {i}")))
                            .unwrap();
                        match ws.read().unwrap() {
                            Message::Text(t) => got.push(t.to_string()),
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
                    let bin = ws.read().unwrap();
                    ws.close(None).unwrap();
                    (got, bin)
                })
            })
            .collect();
        for (c, g) in clients.into_iter().enumerate() {
            let (got, bin) = g.join().unwrap();
            let want: Vec<String> = (0..5).map(|i| format!("client {c} message {i}")).collect();
            assert_eq!(got, want);
            assert_eq!(bin, Message::binary(vec![0u8, 1, 2, 255]));
        }
        s.stop().unwrap();
    });
}
