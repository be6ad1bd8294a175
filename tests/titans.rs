//! Titans' linear memory (Eqs. 8–15): a property test over shapes and gate values, input-sensitivity guards
//! and a snapshot of a seeded run. (Every registered check runs in `tests/all_checks.rs`.)

use proptest::prelude::*;
use repro::tensor::{from_tch, to_tch, Draw};
use repro::titans::checks::{reference_batched, Case, Drawn};
use repro::titans::linear_memory::{torch, ReadMode};
use repro::tolerance;
use tch::{Device, Kind};

#[test]
fn outputs_depend_on_the_read_mode_and_the_gates() {
    // guards against a check that compares two implementations which both ignore an input
    let d = Drawn::new(5, Case::with_len(9), Kind::Double);
    let (after, _, _) = reference_batched(&d, 1.0, ReadMode::AfterWrite);
    let (before, _, _) = reference_batched(&d, 1.0, ReadMode::BeforeWrite);
    assert!(repro::tensor::errors(&after, &before).unwrap().rel_rmse > 1e-3);
    let mut d2 = d.clone();
    d2.eta.mapv_inplace(|x| x * 0.5);
    let (halved, _, _) = reference_batched(&d2, 1.0, ReadMode::AfterWrite);
    assert!(repro::tensor::errors(&after, &halved).unwrap().rel_rmse > 1e-3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any shape and any gate values in the stated ranges: tch f64 agrees with the reference.
    #[test]
    fn torch_matches_reference_for_any_shape(
        b in 1usize..3, h in 1usize..3, t in 1usize..20, d_k in 1usize..9, d_v in 1usize..9,
        seed in 0u64..10_000, alpha_max in 0.0f64..1.0, eta_max in 0.0f64..1.0, theta_max in 0.001f64..0.5,
        before in any::<bool>(),
    ) {
        let case = Case { b, h, t, d_k, d_v };
        let mut d = Drawn::new(seed, case, Kind::Double);
        let mut r = Draw::new(seed + 1);
        d.alpha = r.uniform(&[b, h, t], 0.0, alpha_max.max(1e-9));
        d.eta = r.uniform(&[b, h, t], 0.0, eta_max.max(1e-9));
        d.theta = r.uniform(&[b, h, t], 0.0, theta_max);
        let read = if before { ReadMode::BeforeWrite } else { ReadMode::AfterWrite };
        let (y, m, s) = reference_batched(&d, 0.5, read);
        let x: Vec<tch::Tensor> = d.all().iter().map(|(_, a)| to_tch(a, Kind::Double, Device::Cpu)).collect();
        let o = torch::forward(&x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6], &x[7], 0.5, read);
        for (ours, reference) in [(&o.y, &y), (&o.m_final, &m), (&o.s_final, &s)] {
            let e = repro::tensor::errors(&from_tch(ours).unwrap(), reference).unwrap();
            prop_assert!(e.rel_rmse <= tolerance::TORCH_F64_VS_REFERENCE, "rel_rmse {}", e.rel_rmse);
        }
    }
}

#[test]
fn seeded_run_snapshot() {
    // The seeded inputs and the reference's outputs are deterministic: a change here means the draw, the
    // conventions or the equations changed.
    let d = Drawn::new(2024, Case { b: 1, h: 1, t: 4, d_k: 3, d_v: 2 }, Kind::Double);
    let (y, m, s) = reference_batched(&d, 1.0, ReadMode::AfterWrite);
    let round = |a: &repro::tensor::Arr| a.iter().map(|x| format!("{x:.8}")).collect::<Vec<_>>();
    // which checks verify which equations (the checks themselves run once per dtype in tests/all_checks.rs)
    let plan = repro::verify::planned_checks(&[repro::registry::load("titans").unwrap()], None);
    let table: Vec<String> = plan.iter().map(|(check, eqs)| format!("{check} [{}]", eqs.join(","))).collect();
    insta::assert_yaml_snapshot!((round(&y), round(&m), round(&s), table));
}
