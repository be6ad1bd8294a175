//! `papers/titans.yaml` agrees with the code: every check it names exists, every code path resolves to a `fn`
//! in the source tree, every eval rule exists, and every Titans check in code is listed.

use std::path::Path;

#[test]
fn titans_registry_is_consistent_with_the_code() {
    let papers = repro::registry::load_all().expect("registry files parse");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems: Vec<String> =
        repro::registry::problems(&papers, Some(&src)).into_iter().filter(|p| p.contains("titans")).collect();
    assert!(problems.is_empty(), "registry problems:\n{}", problems.join("\n"));
}

/// Eqs. 21–31 (MAC, MAG, MAL) are verified by the model checks, which compare each tch mixer with the f64
/// reference of `src/models/reference.rs`.
#[test]
fn titans_models_are_verified_by_the_model_checks() {
    let titans = repro::registry::load("titans").unwrap();
    for e in &titans.equations {
        let n: u32 = e.number.parse().unwrap();
        if (21..=31).contains(&n) {
            assert_eq!(e.status, repro::registry::Status::Verified, "{}", e.id);
            assert!(e.checks.iter().any(|c| c.starts_with("titans_model_")), "{}: {:?}", e.id, e.checks);
        }
    }
}
