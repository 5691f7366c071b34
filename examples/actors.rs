//! The actors pattern from the gevent talk: each actor is a greenlet with an inbox (a
//! `Queue`), receiving one message at a time; a pinger and a ponger trade messages.
//!
//! ```python
//! class Actor(gevent.Greenlet):
//!     def __init__(self):
//!         self.inbox = Queue()
//!         Greenlet.__init__(self)
//!     def _run(self):
//!         self.running = True
//!         while self.running:
//!             message = self.inbox.get()
//!             self.receive(message)
//!
//! class Pinger(Actor):
//!   def receive(self, message):
//!      print(message)
//!      pong.inbox.put('ping')
//!      gevent.sleep(0)
//! class Ponger(Actor):
//!   def receive(self, message):
//!      print(message)
//!      ping.inbox.put('pong')
//!      gevent.sleep(0)
//! ping = Pinger()
//! pong = Ponger()
//! ping.start()
//! pong.start()
//! ping.inbox.put('start') # this starts the producer/consumer cycle
//! gevent.joinall([ping, pong])
//! ```
//!
//! The talk's program never ends; here the pinger sends `ROUNDS` pings and then a
//! `"stop"`, which ends the ponger's loop and its own, so `joinall` returns (each
//! actor has received `ROUNDS` + 1 messages by then).
//!
//! Run: `cargo run --example actors -- [ROUNDS]` (default 5).

use gevent::hub::{joinall, sleep, spawn, Greenlet, Queue};
use std::time::Duration;

/// An actor: a greenlet that takes messages from its inbox one at a time and hands
/// each to `receive`, until `receive` says to stop.
struct Actor {
    inbox: Queue<String>,
    greenlet: Greenlet<u32>,
}

impl Actor {
    fn start(inbox: Queue<String>, mut receive: impl FnMut(String) -> bool + 'static) -> Actor {
        let mine = inbox.clone();
        let greenlet = spawn(move || {
            let mut received = 0;
            while let Ok(message) = mine.get() {
                received += 1;
                if !receive(message) {
                    break;
                }
            }
            received
        });
        Actor { inbox, greenlet }
    }
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (ping_inbox, pong_inbox) = (Queue::new(), Queue::new());

    let to_pong = pong_inbox.clone();
    let mut sent = 0;
    let ping = Actor::start(ping_inbox.clone(), move |message| {
        println!("{message}");
        sent += 1;
        let next = if sent > rounds { "stop" } else { "ping" };
        let _ = to_pong.put(next.to_owned());
        sleep(Duration::ZERO);
        next != "stop"
    });
    let to_ping = ping_inbox.clone();
    let pong = Actor::start(pong_inbox, move |message| {
        println!("{message}");
        if message == "stop" {
            return false;
        }
        let _ = to_ping.put("pong".to_owned());
        sleep(Duration::ZERO);
        true
    });

    // This starts the producer/consumer cycle.
    let _ = ping.inbox.put("start".to_owned());
    let actors = [&ping.greenlet, &pong.greenlet];
    let all = joinall(actors, None, false).unwrap_or(false);
    println!(
        "both stopped: {all}; ping received {}, pong received {}",
        ping.greenlet.get().unwrap_or(0),
        pong.greenlet.get().unwrap_or(0)
    );
}
