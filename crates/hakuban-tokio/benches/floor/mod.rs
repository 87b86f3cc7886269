//! BENCHMARKS.md S0, the floor S2 is measured against: two clients ping-pong 32-byte messages
//! through a plain TCP byte relay (threads doing nothing but copying). Standard library only, so
//! the 0.8.5 comparison (`xtask/compare-085`) measures the very same floor.

use std::time::{Duration, Instant};

/// Median RTT through a TCP relay thread, in microseconds, and round trips per second.
pub fn s0_floor(warm_up: i64, measured: i64) -> (f64, f64) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (a, _) = listener.accept().unwrap();
        let (b, _) = listener.accept().unwrap();
        for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = from.read(&mut buffer) {
                    if n == 0 || to.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut a = TcpStream::connect(address).unwrap();
    let mut b = TcpStream::connect(address).unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    // The echo and relay threads end with the process; joining them would wait on sockets the
    // relay still holds.
    std::thread::spawn(move || {
        let mut buffer = [0u8; 32];
        while b.read_exact(&mut buffer).is_ok() {
            if b.write_all(&buffer).is_err() {
                return;
            }
        }
    });
    let mut rtts = Vec::with_capacity(measured as usize);
    let mut buffer = [7u8; 32];
    for i in 0..warm_up + measured {
        let start = Instant::now();
        a.write_all(&buffer).unwrap();
        a.read_exact(&mut buffer).unwrap();
        if i >= warm_up {
            rtts.push(start.elapsed());
        }
    }
    drop(a);
    let total: Duration = rtts.iter().sum();
    rtts.sort();
    (rtts[rtts.len() / 2].as_secs_f64() * 1e6, measured as f64 / total.as_secs_f64())
}
