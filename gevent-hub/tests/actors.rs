//! The actor ping-pong from the gevent talks: two greenlets, each with an inbox, trade
//! messages for N rounds and then stop cleanly.

mod util;

use gevent_hub::{spawn, with_timeout, Channel, Queue};
use util::WATCHDOG_LIMIT;

const ROUNDS: u32 = 1_000;

#[derive(Debug, PartialEq)]
enum Msg {
    Ping(u32),
    Pong(u32),
    Stop,
}

#[test]
fn pinger_and_ponger_trade_messages_through_queues_and_stop_on_a_message() {
    with_timeout(WATCHDOG_LIMIT, || {
        let ping_inbox = Queue::new();
        let pong_inbox = Queue::new();

        let ponger = {
            let (inbox, reply) = (pong_inbox.clone(), ping_inbox.clone());
            spawn(move || {
                let mut answered = 0;
                loop {
                    match inbox.get().unwrap() {
                        Msg::Ping(n) => {
                            reply.put(Msg::Pong(n)).unwrap();
                            answered += 1;
                        }
                        Msg::Stop => return answered,
                        Msg::Pong(n) => panic!("the ponger got a pong ({n})"),
                    }
                }
            })
        };
        let pinger = {
            let (inbox, peer) = (ping_inbox.clone(), pong_inbox.clone());
            spawn(move || {
                for n in 0..ROUNDS {
                    peer.put(Msg::Ping(n)).unwrap();
                    assert_eq!(
                        inbox.get().unwrap(),
                        Msg::Pong(n),
                        "answers match, in order"
                    );
                }
                peer.put(Msg::Stop).unwrap();
                ROUNDS
            })
        };

        assert_eq!(pinger.join().unwrap(), ROUNDS);
        assert_eq!(ponger.join().unwrap(), ROUNDS);
        assert!(
            ping_inbox.is_empty() && pong_inbox.is_empty(),
            "no message left over"
        );
        assert_eq!(
            ping_inbox.waiting_getters() + pong_inbox.waiting_getters(),
            0
        );
    })
    .expect("watchdog: the actors hung");
}

#[test]
fn actors_over_channels_stop_when_the_inbox_is_shut_down() {
    with_timeout(WATCHDOG_LIMIT, || {
        // Rendezvous inboxes: each send waits until the other actor receives it.
        let ping_inbox = Channel::new();
        let pong_inbox = Channel::new();

        let ponger = {
            let (inbox, reply) = (pong_inbox.clone(), ping_inbox.clone());
            spawn(move || {
                let mut answered = 0u32;
                // Ends when the pinger shuts the inbox down.
                for n in &inbox {
                    reply.put(n + 1).unwrap();
                    answered += 1;
                }
                answered
            })
        };
        let pinger = {
            let (inbox, peer) = (ping_inbox.clone(), pong_inbox.clone());
            spawn(move || {
                let mut n = 0u32;
                for _ in 0..ROUNDS {
                    peer.put(n).unwrap();
                    n = inbox.get().unwrap();
                }
                peer.shutdown(false);
                n
            })
        };

        assert_eq!(pinger.join().unwrap(), ROUNDS, "each round added one");
        assert_eq!(ponger.join().unwrap(), ROUNDS);
        assert!(pong_inbox.is_shutdown());
    })
    .expect("watchdog: the actors hung");
}
