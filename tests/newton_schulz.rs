//! The shared Newton–Schulz block: tch equals the f64 reference, and the hand-written backward equals central
//! finite differences. (ATLAS' checks add the singular-value band and the paper's properties.)
use ndarray::Array2;
use ndarray::Ix2;
use repro::newton_schulz::{reference, torch, Kind};
use repro::tensor::Draw;
use tch::{Kind as Dtype, Tensor};

fn draw(rng: &mut Draw, rows: usize, cols: usize) -> Array2<f64> {
    rng.normal(&[rows, cols], 1.0).into_dimensionality::<Ix2>().unwrap()
}

#[test]
fn tch_matches_reference_for_wide_and_tall_inputs() {
    let rng = &mut Draw::new(11);
    for kind in [Kind::QuinticMuon, Kind::Cubic] {
        for (r, c) in [(5, 9), (9, 5), (7, 7)] {
            let s = draw(rng, r, c);
            let want = reference::orthogonalize(&s, kind, 5);
            let t = Tensor::from_slice(s.as_slice().unwrap()).view([r as i64, c as i64]).to_kind(Dtype::Double);
            let got: Vec<f64> = torch::orthogonalize(&t, kind, 5).flatten(0, -1).try_into().unwrap();
            let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            // f64 vs f64, five steps of a few small products each: rounding only.
            assert!(err < 1e-12, "{kind:?} {r}x{c}: max abs {err:e}");
        }
    }
}

#[test]
fn hand_written_backward_matches_finite_differences() {
    let rng = &mut Draw::new(12);
    for kind in [Kind::QuinticMuon, Kind::Cubic] {
        for (r, c) in [(3, 5), (5, 3)] {
            let s = draw(rng, r, c);
            let g = draw(rng, r, c);
            let analytic = reference::orthogonalize_backward(&s, &g, kind, 5);
            let numeric = repro::check::finite_difference(&s, |x| (reference::orthogonalize(x, kind, 5) * &g).sum());
            let scale = numeric.iter().map(|x| x * x).sum::<f64>().sqrt();
            let err = (&analytic - &numeric).iter().map(|x| x * x).sum::<f64>().sqrt() / scale;
            // central differences with step FD_STEP on a degree-5^5 polynomial map: truncation ~1e-7 relative.
            assert!(err < repro::tolerance::FINITE_DIFFERENCE_CHAIN, "{kind:?} {r}x{c}: rel {err:e}");
        }
    }
}
