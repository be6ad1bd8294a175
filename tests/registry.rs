//! The registry (`papers/*.yaml`) and the code agree: every named check exists, every check in code is
//! listed, every verified entry has checks and code paths that resolve in `src/`.

use repro::registry::{self, parse_paper, problems, Status};
use std::path::Path;

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

#[test]
fn registry_and_code_agree() {
    let papers = registry::load_all().expect("all registry files parse");
    let found = problems(&papers, Some(src()));
    assert!(found.is_empty(), "registry and code disagree:\n{}", found.join("\n"));
}

#[test]
fn titans_lists_every_numbered_equation() {
    let p = registry::load("titans").unwrap();
    let numbers: Vec<String> = p.equations.iter().map(|e| e.number.clone()).collect();
    let expected: Vec<String> = (1..=35).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected);
    for n in 8..=15 {
        if n == 11 {
            continue; // the projections arrive with the models
        }
        let e = p.equations.iter().find(|e| e.number == n.to_string()).unwrap();
        assert_eq!(e.status, Status::Verified, "titans.{n} should be verified");
    }
}

const HEADER: &str = "key: demo\ntitle: t\narxiv: '0'\nversion: v1\n";

#[test]
fn a_missing_check_is_reported() {
    let yaml = format!(
        "{HEADER}equations:\n  - id: demo.1\n    number: '1'\n    latex: x\n    meaning: m\n    \
         code: {{ reference: titans::linear_memory::reference::step, torch: titans::linear_memory::torch::forward }}\n    \
         checks: [no_such_check]\n    status: verified\n"
    );
    let p = parse_paper("demo.yaml", &yaml).unwrap();
    let found = problems(&[p], Some(src()));
    assert!(found.iter().any(|l| l.contains("no_such_check") && l.contains("does not exist")), "{found:?}");
    // and every real check is then reported as unlisted
    assert!(found.iter().any(|l| l.contains("titans_linear_memory") && l.contains("no registry entry")), "{found:?}");
}

#[test]
fn a_verified_entry_without_check_or_code_is_reported() {
    let yaml = format!(
        "{HEADER}equations:\n  - id: demo.2\n    number: '2'\n    latex: x\n    meaning: m\n    status: verified\n"
    );
    let p = parse_paper("demo.yaml", &yaml).unwrap();
    let found = problems(&[p], None);
    assert!(found.iter().any(|l| l.contains("demo.2") && l.contains("no check")), "{found:?}");
    assert!(found.iter().any(|l| l.contains("demo.2") && l.contains("no code paths")), "{found:?}");
}

#[test]
fn a_code_path_that_does_not_resolve_is_reported() {
    let yaml = format!(
        "{HEADER}equations:\n  - id: demo.3\n    number: '3'\n    latex: x\n    meaning: m\n    \
         code: {{ reference: titans::linear_memory::reference::no_such_fn, torch: titans::nowhere::torch::forward }}\n    \
         checks: [titans_linear_memory]\n    status: verified\n"
    );
    let p = parse_paper("demo.yaml", &yaml).unwrap();
    let found = problems(&[p], Some(src()));
    assert!(found.iter().any(|l| l.contains("no_such_fn")), "{found:?}");
    assert!(found.iter().any(|l| l.contains("titans::nowhere")), "{found:?}");
}

#[test]
fn unknown_fields_and_todo_without_reason_are_errors() {
    let typo = format!(
        "{HEADER}equations:\n  - id: demo.4\n    number: '4'\n    latex: x\n    meaning: m\n    stauts: todo\n"
    );
    let err = format!("{:#}", parse_paper("demo.yaml", &typo).unwrap_err());
    assert!(err.contains("demo.yaml") && err.contains("stauts") && err.contains("line"), "{err}");
    let no_reason = format!(
        "{HEADER}equations:\n  - id: demo.5\n    number: '5'\n    latex: x\n    meaning: m\n    status: todo\n"
    );
    let p = parse_paper("demo.yaml", &no_reason).unwrap();
    assert!(problems(&[p], None).iter().any(|l| l.contains("demo.5") && l.contains("reason")));
}

/// A user's clone has nothing outside the repository: the registry and the README point to the arXiv papers.
#[test]
fn the_registry_and_readme_point_to_arxiv_not_outside_the_repository() {
    let papers = registry::load_all().expect("all registry files parse");
    for p in &papers {
        if let Some(c) = &p.catalog {
            assert_eq!(c, &format!("https://arxiv.org/abs/{}{}", p.arxiv, p.version), "{}: catalog", p.key);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    files.extend(std::fs::read_dir(root.join("papers")).unwrap().map(|e| e.unwrap().path()));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("../shared"), "{} points outside the repository (../shared)", f.display());
    }
}
