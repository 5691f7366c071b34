//! A line-based chat server: each line a client sends goes to every connected client.
//! The slides list chat systems first among what gevent is for ("IO multiplexing:
//! chatting system").
//!
//! Each connection is two greenlets: the handler reads the client's lines and
//! broadcasts them; a writer drains the client's outbox. Broadcasting only appends to
//! outboxes, so one slow client never holds up the others (and never has two
//! greenlets writing its socket at once); a client whose outbox overflows is
//! disconnected.
//!
//! Protocol: the first line a client sends is its name; every later line is said to
//! everyone as `<name> line`. Joins and departures are announced as `* name joined`.
//!
//! Run: `cargo run --example chat -- [PORT]` (default 5000; until Ctrl-C), then
//! `nc localhost 5000` from a few terminals. Or
//! `cargo run --example chat -- --self-test`: a server and three clients in one
//! process that join, say hello, check that everyone heard everyone, and exit.

use gevent::hub::net::TcpStream;
use gevent::hub::server::StreamServer;
use gevent::hub::{joinall, spawn, AnyGreenlet, Event, Greenlet};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::rc::Rc;

/// Lines queued for one client beyond this mean it does not keep up: it is dropped.
const OUTBOX_LIMIT: usize = 1000;

/// Lines waiting to be written to one client, and a flag its writer waits on.
#[derive(Default)]
struct Outbox {
    lines: RefCell<VecDeque<Rc<str>>>,
    ready: Event,
    closed: Cell<bool>,
}

/// Everyone connected, by connection number.
#[derive(Default)]
struct Room {
    members: RefCell<HashMap<u64, (TcpStream, Rc<Outbox>)>>,
    next_id: Cell<u64>,
}

impl Room {
    /// Queues `line` for every member; a member whose outbox is full is disconnected
    /// (closing its socket wakes its greenlets, which then clean up).
    fn broadcast(&self, line: &str) {
        let line: Rc<str> = Rc::from(format!("{line}\n"));
        for (sock, outbox) in self.members.borrow().values() {
            let mut q = outbox.lines.borrow_mut();
            if q.len() >= OUTBOX_LIMIT {
                sock.close();
                continue;
            }
            q.push_back(line.clone());
            outbox.ready.set();
        }
    }
}

/// Writes a client's outbox to its socket until the outbox is closed or a write fails.
fn writer(mut sock: TcpStream, outbox: Rc<Outbox>) {
    loop {
        let next = outbox.lines.borrow_mut().pop_front();
        match next {
            Some(line) => {
                if sock.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
            None if outbox.closed.get() => return,
            None => {
                // Nothing can be queued between the check above and this wait: no other
                // greenlet runs until this one blocks.
                outbox.ready.clear();
                if outbox.ready.wait().is_err() {
                    return;
                }
            }
        }
    }
}

/// One client: read its name, join, broadcast its lines, leave at EOF.
fn handle(room: &Rc<Room>, sock: TcpStream, peer: SocketAddr) {
    let mut lines = BufReader::new(sock.try_clone().expect("clone")).lines();
    let name = match lines.next() {
        Some(Ok(n)) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => return,
    };
    let id = room.next_id.get();
    room.next_id.set(id + 1);
    let outbox = Rc::new(Outbox::default());
    let w = spawn({
        let (sock, outbox) = (sock.try_clone().expect("clone"), outbox.clone());
        move || writer(sock, outbox)
    });
    room.members
        .borrow_mut()
        .insert(id, (sock.try_clone().expect("clone"), outbox.clone()));
    eprintln!("{peer}: {name} joined");
    room.broadcast(&format!("* {name} joined"));
    for line in lines {
        match line {
            Ok(l) => room.broadcast(&format!("<{name}> {l}")),
            Err(_) => break,
        }
    }
    room.members.borrow_mut().remove(&id);
    room.broadcast(&format!("* {name} left"));
    eprintln!("{peer}: {name} left");
    // Let the writer flush what is queued, then stop.
    outbox.closed.set(true);
    outbox.ready.set();
    let _ = w.join();
}

fn chat_server(addr: &str) -> io::Result<StreamServer> {
    let room = Rc::new(Room::default());
    StreamServer::new(addr, move |sock, peer| handle(&room, sock, peer))
}

/// Three clients join, each says hello once everyone is in, and each checks that it
/// heard all three hellos.
fn self_test() -> io::Result<()> {
    const NAMES: [&str; 3] = ["alice", "bob", "carol"];
    let server = chat_server("127.0.0.1:0")?;
    server.start()?;
    let addr = server.server_addr();
    println!("self-test: chat server on {addr}");
    let joined = Rc::new(Cell::new(0));
    let everyone_in = Event::new();
    let clients: Vec<Greenlet<io::Result<Vec<String>>>> = NAMES
        .iter()
        .map(|&name| {
            let (joined, everyone_in) = (joined.clone(), everyone_in.clone());
            spawn(move || {
                let mut sock = TcpStream::connect(addr)?;
                let mut lines = BufReader::new(sock.try_clone()?).lines();
                let mut heard = Vec::new();
                let mut next_line = || -> io::Result<String> {
                    let l = lines
                        .next()
                        .unwrap_or(Err(io::ErrorKind::UnexpectedEof.into()))?;
                    println!("  {name:>5} hears: {l}");
                    Ok(l)
                };
                sock.write_all(format!("{name}\n").as_bytes())?;
                // Our own join notice means we are in the room.
                while next_line()? != format!("* {name} joined") {}
                joined.set(joined.get() + 1);
                if joined.get() == NAMES.len() {
                    everyone_in.set();
                }
                everyone_in.wait().map_err(io::Error::from)?;
                sock.write_all(format!("hello from {name}\n").as_bytes())?;
                while heard.len() < NAMES.len() {
                    let l = next_line()?;
                    if !l.starts_with('*') {
                        heard.push(l);
                    }
                }
                Ok(heard)
            })
        })
        .collect();
    let refs: Vec<&dyn AnyGreenlet> = clients.iter().map(|g| g as _).collect();
    joinall(&refs, None, false).map_err(io::Error::from)?;
    let mut ok = true;
    for (name, c) in NAMES.iter().zip(clients) {
        let mut heard = c.join().map_err(|e| io::Error::other(e.to_string()))??;
        heard.sort();
        let mut expected: Vec<String> = NAMES
            .iter()
            .map(|n| format!("<{n}> hello from {n}"))
            .collect();
        expected.sort();
        if heard != expected {
            eprintln!("{name} heard {heard:?}, expected {expected:?}");
            ok = false;
        }
    }
    server.stop()?;
    if ok {
        println!("self-test: every client heard every hello");
        Ok(())
    } else {
        Err(io::Error::other("a client missed a message"))
    }
}

fn main() -> io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--self-test") {
        return self_test();
    }
    let port: u16 = arg.as_deref().map_or(Ok(5000), str::parse).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: chat [PORT] | --self-test",
        )
    })?;
    let server = chat_server(&format!("0.0.0.0:{port}"))?;
    eprintln!(
        "chat server on {}; connect with `nc localhost {port}`, first line is your name",
        server.server_addr()
    );
    server.serve_forever()
}
