//! MIRAS: the registry agrees with the code, the axis names parse, and property tests of the framework's
//! invariants. (Every check runs once per dtype in `tests/all_checks.rs`; the eval rules in `tests/eval.rs`.)

use proptest::prelude::*;

#[test]
fn miras_registry_agrees_with_code() {
    let papers = repro::registry::load_all().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems: Vec<String> =
        repro::registry::problems(&papers, Some(&src)).into_iter().filter(|p| p.contains("miras")).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn axis_names_parse_from_yaml() {
    use repro::miras::framework::{Algorithm, Bias, Config, LqForm, Memory, Retention};
    let cfg: Config = serde_yaml::from_str(
        "memory: {kind: linear}\nbias: {kind: lp, p: 3}\nretention: {kind: lq, q: 4, form: mirror}\nalgorithm: {kind: gd}\n",
    )
    .unwrap();
    assert_eq!(cfg, Config::linear(Bias::Lp { p: 3.0 }, Retention::Lq { q: 4.0, form: LqForm::Mirror }, Algorithm::Gd));
    for s in [
        "{kind: dot-product, scale: 1}",
        "{kind: l2, scale: 0.5}",
        "{kind: l1}",
        "{kind: lp-smooth, p: 3, kappa: 5, eps: 1e-6}",
        "{kind: huber}",
        "{kind: huber-norm}",
        "{kind: l2-l1-switch}",
        "{kind: value-shift}",
    ] {
        serde_yaml::from_str::<Bias>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    for s in [
        "{kind: none}",
        "{kind: l2-decayed}",
        "{kind: l2-local-global}",
        "{kind: elastic-net, beta: 2, alpha: 1}",
        "{kind: elastic-net-ftrl, alpha: 1}",
        "{kind: lq, q: 3, form: printed}",
        "{kind: kl}",
        "{kind: bregman-sigmoid}",
    ] {
        serde_yaml::from_str::<Retention>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    for s in ["{kind: gd}", "{kind: momentum}", "{kind: implicit-gd}"] {
        serde_yaml::from_str::<Algorithm>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    assert_eq!(
        serde_yaml::from_str::<Memory>("{kind: mlp, depth: 2, expansion: 4}").unwrap(),
        Memory::Mlp { depth: 2, expansion: 4 }
    );
    assert!(serde_yaml::from_str::<Bias>("{kind: l3}").is_err());
    for p in repro::miras::presets::Preset::ALL {
        assert_eq!(repro::miras::presets::Preset::parse(p.name()).unwrap(), p);
        p.config().validate().unwrap();
    }
}

fn arr2(v: &[f64], r: usize, c: usize) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_vec((r, c), v.to_vec()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// ℓ_p hand gradient vs central finite differences for any p in [1.2, 4].
    #[test]
    fn lp_gradient_matches_fd(p in 1.2f64..4.0, w in proptest::collection::vec(-2.0f64..2.0, 15), k in proptest::collection::vec(-1.0f64..1.0, 5), v in proptest::collection::vec(-2.0f64..2.0, 3)) {
        use repro::miras::bias::{reference, Bias};
        let (w, k, v) = (arr2(&w, 3, 5), ndarray::Array1::from(k), ndarray::Array1::from(v));
        let e = w.dot(&k) - &v;
        prop_assume!(e.iter().all(|x| x.abs() > 1e-2));
        let hand = reference::grad(Bias::Lp { p }, w.view(), k.view(), v.view(), 0.0);
        let fd = repro::check::finite_difference(&w, |m| reference::loss(Bias::Lp { p }, m.view(), k.view(), v.view(), 0.0));
        let err = (&fd - &hand).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        prop_assert!(err < 1e-5, "p = {p}: max |fd − hand| = {err}");
    }

    /// The ℓ_q mirror map is 1-homogeneous and is undone by the dual map; the printed form is (3−q)-homogeneous.
    #[test]
    fn lq_map_homogeneity(q in 2.0f64..5.0, s in 0.1f64..10.0, a in proptest::collection::vec(-2.0f64..2.0, 12)) {
        use repro::miras::retention::{reference as r, LqForm};
        let a = arr2(&a, 3, 4);
        prop_assume!(r::lq_norm(&a, q) > 1e-3);
        let m = r::lq_map(&a, q, LqForm::Mirror);
        let ms = r::lq_map(&(&a * s), q, LqForm::Mirror);
        let err = (&ms - &(&m * s)).iter().fold(0.0f64, |x, y| x.max(y.abs()));
        prop_assert!(err < 1e-9 * (1.0 + s) * 10.0);
        let p = r::lq_map(&a, q, LqForm::Printed);
        let ps = r::lq_map(&(&a * s), q, LqForm::Printed);
        let err = (&ps - &(&p * s.powf(3.0 - q))).iter().fold(0.0f64, |x, y| x.max(y.abs()));
        prop_assert!(err < 1e-8 * (1.0 + p.iter().fold(0.0f64, |x, y| x.max(y.abs()))) * s.powf((3.0 - q).abs()).max(1.0));
    }

    /// Memora keeps every row of W on the probability simplex for any gates.
    #[test]
    fn memora_rows_on_simplex(seed in 0u64..1000, eta in 0.01f64..2.0, alpha in 0.1f64..1.0) {
        use repro::miras::update::reference::{forward, Inputs};
        use repro::tensor::Draw;
        let mut d = Draw::new(seed);
        let t = 11;
        let two = |a: repro::tensor::Arr| a.into_dimensionality::<ndarray::Ix2>().unwrap();
        let inp = Inputs {
            k: two(d.unit_rows(&[t, 7])), v: two(d.normal(&[t, 5], 2.0)), q: two(d.unit_rows(&[t, 7])),
            alpha: ndarray::Array1::from_elem(t, alpha), eta: ndarray::Array1::from_elem(t, eta),
            delta: ndarray::Array1::zeros(t), mu: ndarray::Array1::zeros(t), m0: two(d.normal(&[5, 7], 1.0)),
        };
        let cfg = repro::miras::models::Model::Memora { scale: 1.0 }.config();
        let o = forward(&cfg, &inp);
        for row in o.w.rows() {
            prop_assert!(row.iter().all(|x| *x >= 0.0));
            prop_assert!((row.sum() - 1.0).abs() < 1e-12);
        }
    }
}
