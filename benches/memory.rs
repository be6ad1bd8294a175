//! Throughput of Titans' memory layer: the chunkwise form (Eqs. 16–18, matrix form for the linear memory,
//! batched per-token gradients for the MLP memory) against the sequential recurrence (Eqs. 13–15), forward
//! only, one head, d_k = d_v = 64, T = 1024, f32 on the CPU. `cargo bench --bench memory`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use repro as _;
use repro::memory::ReadMode;
use repro::titans::mlp_memory::MlpConfig;
use repro::titans::{chunkwise, linear_memory, mlp_memory};
use std::time::Duration;
use tch::{Device, Kind, Tensor};

const T: i64 = 1024;
const D: i64 = 64;

struct Inputs {
    k: Tensor,
    v: Tensor,
    q: Tensor,
    alpha: Tensor,
    eta: Tensor,
    theta: Tensor,
}

fn inputs() -> Inputs {
    tch::manual_seed(0);
    let o = (Kind::Float, Device::Cpu);
    let unit = |t: Tensor| {
        let n = t.square().sum_dim_intlist([-1i64].as_slice(), true, Kind::Float).sqrt();
        t / n
    };
    Inputs {
        k: unit(Tensor::randn([1, 1, T, D], o)),
        v: Tensor::randn([1, 1, T, D], o),
        q: unit(Tensor::randn([1, 1, T, D], o)),
        alpha: Tensor::rand([1, 1, T], o) * 0.1,
        eta: Tensor::rand([1, 1, T], o) * 0.9,
        theta: Tensor::rand([1, 1, T], o) * 0.1,
    }
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(1);
    let x = inputs();
    let zeros = Tensor::zeros([1, 1, D, D], (Kind::Float, Device::Cpu));
    let mut g = c.benchmark_group("titans_linear_memory_d64_T1024");
    g.throughput(Throughput::Elements(T as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.bench_function("sequential", |b| {
        b.iter(|| {
            tch::no_grad(|| {
                linear_memory::torch::forward(
                    &x.k,
                    &x.v,
                    &x.q,
                    &x.alpha,
                    &x.eta,
                    &x.theta,
                    &zeros,
                    &zeros,
                    1.0,
                    ReadMode::AfterWrite,
                )
            })
        })
    });
    for chunk in [16usize, 64] {
        g.bench_function(format!("chunkwise_C{chunk}"), |b| {
            b.iter(|| {
                tch::no_grad(|| {
                    chunkwise::torch::linear_forward(
                        &x.k,
                        &x.v,
                        &x.q,
                        &x.alpha,
                        &x.eta,
                        &x.theta,
                        &zeros,
                        &zeros,
                        chunk,
                        1.0,
                        ReadMode::AfterWrite,
                    )
                })
            })
        });
    }
    g.finish();

    let cfg = MlpConfig::new(2, D as usize);
    let o = (Kind::Float, Device::Cpu);
    let m0 =
        vec![Tensor::randn([1, 1, D, D], o) / (D as f64).sqrt(), Tensor::randn([1, 1, D, D], o) / (D as f64).sqrt()];
    let s0 = vec![Tensor::zeros([1, 1, D, D], o), Tensor::zeros([1, 1, D, D], o)];
    let mut g = c.benchmark_group("titans_mlp_memory_L2_d64_T1024");
    g.throughput(Throughput::Elements(T as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.bench_function("sequential", |b| {
        b.iter(|| {
            tch::no_grad(|| {
                mlp_memory::torch::forward(
                    &x.k,
                    &x.v,
                    &x.q,
                    &x.alpha,
                    &x.eta,
                    &x.theta,
                    &m0,
                    &s0,
                    &cfg,
                    1.0,
                    ReadMode::AfterWrite,
                )
            })
        })
    });
    g.bench_function("chunkwise_C64", |b| {
        b.iter(|| {
            tch::no_grad(|| {
                chunkwise::torch::mlp_forward(
                    &x.k,
                    &x.v,
                    &x.q,
                    &x.alpha,
                    &x.eta,
                    &x.theta,
                    &m0,
                    &s0,
                    &cfg,
                    64,
                    1.0,
                    ReadMode::AfterWrite,
                )
            })
        })
    });
    g.finish();
}

// no plots: plotters' PDF backend needs system fonts this image does not have
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
