//! MIRAS checks at f64 and f32 on the CPU: every measurement of every check must pass, plus property tests
//! of the framework's invariants.

use proptest::prelude::*;
use repro::check::{find_check, CheckEnv};
use rstest::rstest;
use tch::{Device, Kind};

fn run(name: &str, kind: Kind) {
    let check = find_check(name).unwrap_or_else(|| panic!("no check `{name}`"));
    let env = CheckEnv::new(Device::Cpu, kind, 1);
    let ms = (check.run)(&env).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(!ms.is_empty(), "{name}: no measurements");
    let failed: Vec<String> = ms
        .iter()
        .filter(|m| !m.pass())
        .map(|m| {
            format!(
                "{}: rel_rmse {:.3e} > {:.1e} (max_abs {:.3e})",
                m.quantity, m.errors.rel_rmse, m.tolerance, m.errors.max_abs
            )
        })
        .collect();
    assert!(failed.is_empty(), "{name} at {kind:?}:\n{}", failed.join("\n"));
}

#[rstest]
fn miras_check(
    #[values(Kind::Double, Kind::Float)] kind: Kind,
    #[values(
        "miras_bias_dot_product",
        "miras_bias_l2",
        "miras_bias_lp",
        "miras_bias_l1",
        "miras_bias_lp_smooth",
        "miras_bias_huber",
        "miras_bias_huber_norm",
        "miras_bias_l2_l1_switch",
        "miras_bias_value_shift",
        "miras_gd_proximal_ftrl",
        "miras_retention_l2_decayed",
        "miras_retention_local_global",
        "miras_retention_elastic_net",
        "miras_retention_elastic_net_ftrl",
        "miras_retention_lq",
        "miras_retention_kl",
        "miras_retention_bregman_sigmoid",
        "miras_retention_f_divergence",
        "miras_framework_combinations",
        "miras_moneta",
        "miras_moneta_reduces_to_l2",
        "miras_yaad",
        "miras_yaad_reduces_to_l2",
        "miras_memora",
        "miras_memora_simplex",
        "miras_preset_linear_attention",
        "miras_preset_retnet",
        "miras_preset_mamba2",
        "miras_preset_deltanet",
        "miras_preset_gated_deltanet",
        "miras_preset_longhorn",
        "miras_preset_ttt_linear",
        "miras_preset_titans_lmm",
        "miras_mlp_inner_gradient",
        "miras_mlp_memory",
        "miras_preset_ttt_mlp"
    )]
    name: &str,
) {
    run(name, kind);
}

#[test]
fn every_miras_check_is_in_this_file() {
    let src = include_str!("miras.rs");
    for c in repro::miras::checks() {
        assert!(src.contains(&format!("\"{}\"", c.name)), "tests/miras.rs does not run {}", c.name);
    }
}

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

/// Every MIRAS eval rule runs end to end on a safetensors file, and its tch output matches its reference output.
#[rstest]
#[case("miras.framework", &[("bias", "{kind: huber}"), ("retention", "{kind: l2-local-global}"), ("algorithm", "{kind: momentum}")])]
#[case("miras.framework", &[("bias", "{kind: lp, p: 3}"), ("retention", "{kind: lq, q: 4, form: mirror}")])]
#[case("miras.preset", &[("preset", "gated-deltanet")])]
#[case("miras.preset", &[("preset", "longhorn")])]
#[case("miras.preset", &[("preset", "titans-lmm")])]
#[case("miras.moneta", &[("chunk", "0")])]
#[case("miras.moneta", &[("chunk", "4"), ("form", "printed")])]
#[case("miras.yaad", &[("chunk", "3")])]
#[case("miras.memora", &[("chunk", "5")])]
#[case("miras.memora", &[("chunk", "0"), ("loss_scale", "0.5")])]
#[case("miras.mlp", &[])]
#[case("miras.mlp", &[("bias", "{kind: lp, p: 3}"), ("retention", "{kind: lq, q: 4, form: mirror}")])]
#[case("miras.mlp", &[("retention", "{kind: l2-local-global}"), ("algorithm", "{kind: momentum}")])]
fn eval_rule_runs(#[case] name: &str, #[case] params: &[(&str, &str)]) {
    use repro::eval::{find_rule, run_file, Impl};
    use repro::tensor::{to_tch, Draw};
    let rule = find_rule(name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (b, h, t, dk, dv) = (2usize, 3usize, 11usize, 7usize, 5usize);
    let mut d = Draw::new(7);
    let mut tensors = vec![];
    for spec in rule.inputs {
        let shape: Vec<usize> = spec
            .dims
            .iter()
            .map(|s| match *s {
                "B" => b,
                "H" => h,
                "T" => t,
                "d_k" => dk,
                "d_v" => dv,
                "d" => dk,
                "hidden" => 4 * dk,
                o => panic!("{o}"),
            })
            .collect();
        let a = match spec.name {
            "k" | "q" => d.unit_rows(&shape),
            "v" => d.normal(&shape, 1.0),
            "alpha" => d.uniform(&shape, 0.8, 1.0),
            "eta" => d.uniform(&shape, 0.02, 0.1),
            "delta" => d.uniform(&shape, 0.3, 1.5),
            "mu" => d.uniform(&shape, 0.0, 0.9),
            "a" | "b" | "c" => d.uniform(&shape, 0.1, 0.3),
            _ => d.normal(&shape, 0.3),
        };
        tensors.push((spec.name.to_string(), to_tch(&a, Kind::Double, Device::Cpu)));
    }
    let input = dir.path().join("in.safetensors");
    tch::Tensor::write_safetensors(&tensors, &input).unwrap();
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut outs = vec![];
    for imp in [Impl::Reference, Impl::Torch] {
        let out = dir.path().join(format!("{imp:?}.safetensors"));
        run_file(&rule, &input, &out, imp, Device::Cpu, Kind::Double, &params).unwrap();
        let mut o = tch::Tensor::read_safetensors(&out).unwrap();
        o.sort_by(|x, y| x.0.cmp(&y.0));
        outs.push(o);
    }
    assert_eq!(outs[0].len(), rule.outputs.len());
    for ((n0, a), (n1, b)) in outs[0].iter().zip(outs[1].iter()) {
        assert_eq!(n0, n1);
        let diff = (a - b).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]).max(1e-300);
        assert!(diff <= 1e-10 * scale.max(1.0), "{name} {n0}: torch vs reference max diff {diff}");
        assert!(a.isfinite().all().int64_value(&[]) == 1, "{name} {n0}: not finite");
    }
}
