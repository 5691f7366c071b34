//! The echo hot path as one fixed workload: two greenlets bounce a message over a
//! `UnixStream` pair, each round trip one write and one read on each side, every byte
//! checked. It is also what callgrind counts to compare the hot path's instructions
//! between two versions of `net`:
//!
//! ```text
//! cargo test --release -p gevent-hub --test net_pingpong --no-run
//! GEVENT_PINGPONG_ROUNDS=20000 valgrind --tool=callgrind target/release/deps/net_pingpong-* \
//!     --test-threads=1 --exact ping_pong_round_trips_over_a_unix_stream_pair
//! ```
//!
//! Run it with two round counts: the difference of the totals divided by the
//! difference of the counts is the cost of one round trip, without the setup.

use gevent_hub::net::UnixStream;
use gevent_hub::{spawn, with_timeout};
use std::io::{Read, Write};
use std::time::Duration;

/// Round trips per run: `GEVENT_PINGPONG_ROUNDS`, or 2,000.
fn rounds() -> u32 {
    std::env::var("GEVENT_PINGPONG_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn ping_pong_round_trips_over_a_unix_stream_pair() {
    let n = rounds();
    let r = with_timeout(Duration::from_secs(60), || {
        let (a, b) = UnixStream::pair().unwrap();
        // The echo side: the handler loop of the echo server.
        let echo = spawn(move || {
            let mut buf = [0u8; 4096];
            let mut echoed = 0u32;
            loop {
                match (&b).read(&mut buf).unwrap() {
                    0 => return echoed,
                    k => {
                        (&b).write_all(&buf[..k]).unwrap();
                        echoed += 1;
                    }
                }
            }
        });
        let mut msg = [0u8; 64];
        let mut back = [0u8; 64];
        for i in 0..n {
            msg.fill(i as u8);
            msg[..4].copy_from_slice(&i.to_le_bytes());
            (&a).write_all(&msg).unwrap();
            (&a).read_exact(&mut back).unwrap();
            assert_eq!(back, msg, "round trip {i}");
        }
        drop(a);
        echo.join().unwrap()
    });
    assert_eq!(r.expect("the round trips finish in time"), n);
}
