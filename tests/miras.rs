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
        .map(|m| format!("{}: rel_rmse {:.3e} > {:.1e} (max_abs {:.3e})", m.quantity, m.errors.rel_rmse, m.tolerance, m.errors.max_abs))
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
        "miras_preset_titans_lmm"
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
