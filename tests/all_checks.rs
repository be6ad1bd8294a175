//! Every check in code (`repro::check::all_checks`, which the registry test ties to `papers/*.yaml`) passes
//! on the CPU in f64 and in f32: one test body, the dtype a parameter, as `repro verify` runs it.

use repro::check::{all_checks, CheckEnv};
use rstest::rstest;
use tch::{Device, Kind};

#[rstest]
fn every_check_passes_on_cpu(#[values(Kind::Double, Kind::Float)] kind: Kind) {
    let env = CheckEnv::new(Device::Cpu, kind, 2);
    let mut failures = vec![];
    let checks = all_checks();
    assert!(!checks.is_empty());
    for check in checks {
        match (check.run)(&env) {
            Err(e) => failures.push(format!("{}: error: {e:#}", check.name)),
            Ok(ms) if ms.is_empty() => failures.push(format!("{}: measured nothing", check.name)),
            Ok(ms) => {
                for m in ms.iter().filter(|m| !m.pass()) {
                    failures.push(format!(
                        "{} {}: rel_rmse {:.2e} (max_abs {:.2e}) > tolerance {:.1e}",
                        check.name, m.quantity, m.errors.rel_rmse, m.errors.max_abs, m.tolerance
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{kind:?}:\n{}", failures.join("\n"));
}
