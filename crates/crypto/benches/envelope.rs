//! Seal + open of a 1 KiB record, the cost the router pays per message.

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use passerelle_crypto::{Envelope, Kek, OrgKeys, Route, open, seal};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let keys = OrgKeys::new(
        "59350S00",
        vec![
            Kek::from_bytes("59350S00-k1", Utc::now(), [1; 32]),
            Kek::from_bytes("59350S00-k2", Utc::now(), [2; 32]),
        ],
    )
    .unwrap();
    let record = vec![b'x'; 1024];
    let route = Route {
        transfer_id: Uuid::from_u128(42),
        flow: "brsa-orientation",
        sender: "CD059",
        schema: "passerelle.jeune/1",
    };
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal+open 1KiB", |b| {
        b.iter(|| {
            let env = seal(black_box(&route), &keys, black_box(&record)).unwrap();
            open(&env, &keys).unwrap()
        })
    });
    g.bench_function("seal+to_bytes+from_bytes+open 1KiB", |b| {
        b.iter(|| {
            let bytes = seal(black_box(&route), &keys, black_box(&record))
                .unwrap()
                .to_bytes();
            open(&Envelope::from_bytes(&bytes).unwrap(), &keys).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
