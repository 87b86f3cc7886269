//! BENCHMARKS.md S1, local fan-out: one exchange, one object expose contract, 100 observe
//! contracts (each its own task) on the same object; the producer sends 20,000 states of 64 bytes
//! back to back; observers stop at the last version. Measured: wall time from the first send until
//! every observer has the last version, and distinct versions seen per observer (printed as a JSON
//! line per run, since criterion only reports times).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::{SinkExt, StreamExt};
use hakuban_core::{DataSynchronized, Exchange, ObjectDescriptor, ObjectState};

/// Like 0.8.5 (which linked jemalloc into every user), the benchmark binary picks a fast
/// allocator; the library itself imposes none.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OBSERVERS: usize = 100;
const UPDATES: i64 = 20_000;

/// `{"seq":<n>,"pad":"xxx…"}` padded to exactly 64 bytes.
fn payload(seq: i64) -> Vec<u8> {
    use std::io::Write;
    let mut text = Vec::with_capacity(64);
    let _ = write!(text, "{{\"seq\":{seq},\"pad\":\"");
    text.resize(62, b'x');
    text.extend_from_slice(b"\"}");
    text
}

struct Outcome {
    wall: Duration,
    mean_versions_seen: f64,
}

fn run_once(runtime: &tokio::runtime::Runtime) -> Outcome {
    runtime.block_on(async {
        let exchange = Exchange::new();
        let descriptor = ObjectDescriptor::from((["bench"], "s1"));
        let mut expose = exchange.object_expose_contract(descriptor.clone()).build();
        let mut observers = Vec::with_capacity(OBSERVERS);
        for _ in 0..OBSERVERS {
            let mut contract = exchange.object_observe_contract(descriptor.clone()).build();
            let mut stream = contract.next().await.unwrap();
            observers.push(tokio::spawn(async move {
                let (mut seen, mut bytes) = (0u64, 0usize);
                while let Some(state) = stream.next().await {
                    seen += 1;
                    bytes += state.data.len();
                    if state.version.first() == Some(&UPDATES) {
                        break;
                    }
                }
                drop(contract);
                (seen, bytes)
            }));
        }
        let mut sink = expose.next().await.unwrap();
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            for seq in 1..=UPDATES {
                let state = ObjectState {
                    data: Arc::new(payload(seq)),
                    format: vec!["JSON".to_string()],
                    version: vec![seq],
                    synchronized: DataSynchronized::Now,
                };
                sink.send(state).await.unwrap();
            }
            (expose, sink)
        });
        let mut total_seen = 0u64;
        for observer in observers {
            let (seen, bytes) = observer.await.unwrap();
            assert!(bytes >= 64);
            total_seen += seen;
        }
        let wall = start.elapsed();
        drop(producer.await.unwrap());
        Outcome { wall, mean_versions_seen: total_seen as f64 / OBSERVERS as f64 }
    })
}

fn s1(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("S1");
    group.sample_size(20);
    group.bench_function("local_fanout_100x20000", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let outcome = run_once(&runtime);
                println!(
                    "{{\"scenario\":\"S1\",\"params\":{{\"observers\":{OBSERVERS},\"updates\":{UPDATES},\"payload\":64}},\"results\":{{\"wall_ms\":{:.3},\"distinct_versions_per_observer\":{:.1},\"deliveries_per_s\":{:.0}}}}}",
                    outcome.wall.as_secs_f64() * 1e3,
                    outcome.mean_versions_seen,
                    outcome.mean_versions_seen * OBSERVERS as f64 / outcome.wall.as_secs_f64(),
                );
                total += outcome.wall;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, s1);
criterion_main!(benches);
