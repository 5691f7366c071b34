//! What a kept-alive request costs in allocations (its own binary: it counts every
//! allocation of the process with a counting global allocator).

mod common;

use common::{on_thread, serve};
use gevent_http::header::{HeaderValue, CONTENT_TYPE};
use gevent_http::{Body, Config, Request, Response};
use gevent_hub::net::TcpStream;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter
// is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n";

/// Sends `n` requests one after another on `c` and reads each answer whole into a
/// buffer of the stack (the client allocates nothing).
fn round_trips(c: &mut TcpStream, n: usize) {
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        c.write_all(REQUEST).unwrap();
        let mut got = 0;
        while !buf[..got].ends_with(b"Hello, World!") {
            let k = c.read(&mut buf[got..]).unwrap();
            assert!(k > 0, "the server closed the connection");
            got += k;
        }
    }
}

/// From a connection's second request on, a request whose fields all have standard
/// names costs the two allocations of the handler's own response map: the request's
/// map is the previous response's.
#[test]
fn a_kept_alive_request_costs_the_two_allocations_of_its_response_map() {
    on_thread(|| {
        let s = serve(Config::default(), |_req: Request<Body>| {
            let mut r = Response::new("Hello, World!");
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        });
        let mut c = TcpStream::connect(s.server_addr()).unwrap();
        round_trips(&mut c, 10);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        round_trips(&mut c, 200);
        let per_request = (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / 200.0;
        assert!(
            per_request <= 2.0,
            "{per_request} allocations per request (the response map's 2 expected)"
        );
        s.stop().unwrap();
    });
}
