use gevent_hub::spawn;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

#[test]
fn smoke() {
    gevent_monkey::patch_all().unwrap();
    let _ = gevent_monkey::patched_here();
    let flag = Rc::new(Cell::new(false));
    let f2 = flag.clone();
    let a = spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        f2.get()
    });
    let _b = spawn({
        let f = flag.clone();
        move || f.set(true)
    });
    assert!(a.join().unwrap());

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let srv = spawn(move || {
        for _ in 0..3 {
            let (mut s, _) = l.accept().unwrap();
            spawn(move || {
                let mut buf = [0u8; 100];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).unwrap();
                }
            });
        }
    });
    let cs: Vec<_> = (0..3)
        .map(|i| {
            spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                for j in 0..10u8 {
                    c.write_all(&[i, j]).unwrap();
                    let mut b = [0u8; 2];
                    c.read_exact(&mut b).unwrap();
                    assert_eq!(b, [i, j]);
                }
                i
            })
        })
        .collect();
    for c in cs {
        c.join().unwrap();
    }
    srv.join().unwrap();
    let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
        .unwrap()
        .collect();
    assert!(!addrs.is_empty());
}
