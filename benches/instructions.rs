//! Instruction counts per review, for valgrind's callgrind: repeatable whatever else the machine is doing, where
//! wall-clock benchmarks on a shared machine are not.
//!
//! cargo bench --bench instructions --no-run
//! for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/deps/instructions-* review examples/admission-review-deployment.json $n 2>&1 | grep refs; done
//! (the difference of the two counts / 1000 = instructions per review; `floor` instead of `review` gives a plain
//! serde_json parse into a Value and its serialization of the same bytes). Without arguments (`cargo bench`) it
//! runs each mode once on each example review, as a smoke test.

use irsa_webhook::admission::Admission;
use serde_json::Value;

mod support;
use support::admission;

fn run(mode: &str, bytes: &[u8], iterations: usize, admission: &Admission) -> usize {
    let mut out = 0;
    for _ in 0..iterations {
        out += match mode {
            "floor" => {
                let value: Value = serde_json::from_slice(std::hint::black_box(bytes)).expect("JSON");
                serde_json::to_vec(&value).expect("serializes").len()
            }
            _ => {
                futures::executor::block_on(admission.review(std::hint::black_box(bytes))).expect("a review").body.len()
            }
        };
    }
    out
}

fn main() {
    let admission = admission();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [mode, path, iterations] = args.as_slice() {
        let bytes = std::fs::read(path).expect("the review file");
        let iterations = iterations.parse().expect("a number of iterations");
        std::hint::black_box(run(mode, &bytes, iterations, &admission));
        return;
    }
    for path in ["examples/admission-review.json", "examples/admission-review-deployment.json"] {
        let bytes = std::fs::read(path).expect("the review file");
        for mode in ["floor", "review"] {
            assert!(run(mode, &bytes, 1, &admission) > 0, "{mode} {path}");
        }
    }
}
