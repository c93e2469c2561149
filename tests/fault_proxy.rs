//! The fault proxy of the tests (`steadycache_api::testing::proxy`, issue 24 item 1) in front
//! of a small echo server: each fault does what it says, and healing undoes it.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use steadycache_api::testing::proxy::FaultProxy;

/// An echo server on a free loopback port, on a thread of its own.
fn echo_server() -> u16 {
    let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
        panic!("no loopback port")
    };
    let Ok(addr) = l.local_addr() else {
        panic!("no address")
    };
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr.port()
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let Ok(s) = TcpStream::connect(("127.0.0.1", proxy.port())) else {
        panic!("the proxy listens")
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    s
}

/// Send `n` bytes and read back what comes within the read timeout: how many, or the error.
fn echo(s: &mut TcpStream, n: usize) -> Result<usize, ErrorKind> {
    s.write_all(&vec![7u8; n]).map_err(|e| e.kind())?;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < n {
        match s.read(&mut buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof),
            Ok(k) => got += k,
            Err(_) if got > 0 => return Ok(got),
            Err(e) => return Err(e.kind()),
        }
    }
    Ok(got)
}

#[test]
fn a_black_hole_holds_bytes_without_closing_and_healing_lets_them_through() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let mut s = connect(&proxy);
    assert_eq!(echo(&mut s, 100), Ok(100));
    proxy.black_hole();
    let r = echo(&mut s, 100);
    assert!(
        matches!(r, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "no answer, and no close: {r:?}"
    );
    proxy.heal();
    let mut buf = [0u8; 100];
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    assert!(s.read_exact(&mut buf).is_ok(), "the held bytes arrive");
    assert_eq!(echo(&mut s, 10), Ok(10));
}

#[test]
fn a_reset_closes_every_open_connection_and_new_ones_work() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let mut a = connect(&proxy);
    let mut b = connect(&proxy);
    assert_eq!(echo(&mut a, 10), Ok(10));
    assert_eq!(echo(&mut b, 10), Ok(10));
    proxy.reset_all();
    for s in [&mut a, &mut b] {
        let r = echo(s, 10);
        assert!(r.is_err(), "{r:?}");
    }
    assert!(proxy.resets() >= 2, "{}", proxy.resets());
    let mut c = connect(&proxy);
    assert_eq!(echo(&mut c, 10), Ok(10));
}

#[test]
fn reset_after_cuts_a_reply_in_the_middle() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    proxy.reset_after(50_000);
    let mut s = connect(&proxy);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let r = echo(&mut s, 200_000);
    assert!(r.is_err(), "a cut reply never arrives whole: {r:?}");
    let (_, to_client) = proxy.bytes();
    assert_eq!(to_client, 50_000, "exactly the bytes before the cut");
}

#[test]
fn latency_delays_each_exchange() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let mut s = connect(&proxy);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    proxy.latency(Duration::from_millis(100), Duration::ZERO);
    let began = Instant::now();
    assert_eq!(echo(&mut s, 10), Ok(10));
    // Both ways: at least 200 ms (a lower bound: the proxy waits at least that).
    assert!(began.elapsed() >= Duration::from_millis(200));
    proxy.heal();
    assert_eq!(echo(&mut s, 10), Ok(10));
}
