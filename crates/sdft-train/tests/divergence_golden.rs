//! The on-policy loss against TRL: per-position losses and their gradients
//! with respect to the student's logits, as `trl.experimental.sdft.loss_utils`
//! and torch autograd give them (`tests/goldens/trl_sdft_loss.json`, written by
//! `scripts/reference/trl_sdft_loss.py`; its versions are in the file).

use sdft_model::kernels::train::divergence::position_loss;
use sdft_model::kernels::train::{DistillLoss, Divergence};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("rows").iter().map(floats).collect()
}

/// `|a − b| ≤ 1e-5 · max(|b|, scale)`: relative, with an absolute floor at
/// the case's largest magnitude (an entry near zero is compared to it).
fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(scale)
}

#[test]
fn losses_and_gradients_equal_trl() {
    let text = include_str!("goldens/trl_sdft_loss.json");
    let golden: Value = serde_json::from_str(text).expect("golden JSON");
    let student = rows(&golden["student_logits"]);
    let teacher = rows(&golden["teacher_logprobs"]);
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 16);
    for case in cases {
        let alpha = case["alpha"].as_f64().unwrap();
        let divergence = if alpha == 1.0 {
            Divergence::Reverse
        } else if alpha == 0.0 {
            Divergence::Forward
        } else {
            Divergence::Jsd { alpha }
        };
        assert_eq!(divergence.trl_alpha(), alpha);
        let loss = DistillLoss {
            divergence,
            topk: case["topk"].as_u64().unwrap() as usize,
            tail: case["tail"].as_bool().unwrap(),
        };
        let want_loss = floats(&case["loss"]);
        let want_grad = rows(&case["grad"]);
        let loss_scale = want_loss.iter().fold(0f64, |m, x| m.max(x.abs()));
        for (r, (z, t)) in student.iter().zip(&teacher).enumerate() {
            let mut g: Vec<f32> = z.iter().map(|&x| x as f32).collect();
            let t: Vec<f32> = t.iter().map(|&x| x as f32).collect();
            let v = position_loss(&mut g, &t, &loss, 1.0);
            assert!(
                close(v, want_loss[r], loss_scale),
                "{loss:?} row {r}: loss {v} vs TRL {}",
                want_loss[r]
            );
            let grad_scale = want_grad[r].iter().fold(0f64, |m, x| m.max(x.abs()));
            for (j, (&a, &b)) in g.iter().zip(&want_grad[r]).enumerate() {
                assert!(
                    close(a as f64, b, grad_scale),
                    "{loss:?} row {r} token {j}: gradient {a} vs torch {b}"
                );
            }
        }
    }
}
