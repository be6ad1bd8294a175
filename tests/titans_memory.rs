//! Every Titans check added with the deep memory, chunkwise form, projections, persistent memory, attention and
//! Appendix C, at f64 and f32 on the CPU, through the same registry `repro verify` uses: all measurements must
//! be within their stated tolerances.

use repro::check::{find_check, CheckEnv};
use rstest::rstest;
use tch::{Device, Kind};

#[rstest]
fn titans_check_passes(
    #[values(
        "titans_mlp_inner_gradient",
        "titans_mlp_memory",
        "titans_mlp_memory_gradients",
        "titans_chunkwise_chunk1_sequential",
        "titans_chunkwise_linear",
        "titans_chunkwise_mlp",
        "titans_chunkwise_state_carry",
        "titans_chunkwise_differs_from_sequential",
        "titans_chunkwise_gradients",
        "titans_projections",
        "titans_gates",
        "titans_block_gradients",
        "titans_persistent_memory",
        "titans_softmax_attention",
        "titans_linear_attention",
        "titans_linear_attention_state",
        "titans_channelwise_gates",
        "titans_deltanet",
        "titans_gated_deltanet_relation",
        "titans_longhorn"
    )]
    name: &str,
    #[values(Kind::Double, Kind::Float)] kind: Kind,
) {
    let check = find_check(name).unwrap_or_else(|| panic!("no check named {name}"));
    let env = CheckEnv::new(Device::Cpu, kind, 1);
    let measurements = (check.run)(&env).unwrap_or_else(|e| panic!("{name} failed to run: {e:#}"));
    assert!(!measurements.is_empty(), "{name} measured nothing");
    let failed: Vec<String> = measurements
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
