//! Reads every file of the paper's data (`$SDFT_SHARED/data/sdft`) and checks row
//! counts against `sdft-method.md` (c), the column mapping, unique ids, and a
//! lossless Parquet round trip.

use std::collections::HashSet;

use sdft_data::{Dataset, ReadOptions};
use sdft_tests::shared_data;

struct Case {
    file: &'static str,
    rows: usize,
    instruction: &'static str,
    output: &'static str,
    multi_turn: usize,
}

const CASES: &[Case] = &[
    Case {
        file: "gsm8k_train.json",
        rows: 7473,
        instruction: "question",
        output: "answer",
        multi_turn: 0,
    },
    Case {
        file: "gsm8k_test.json",
        rows: 1319,
        instruction: "question",
        output: "answer",
        multi_turn: 0,
    },
    Case {
        file: "multiarith_test.json",
        rows: 180,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
    Case {
        file: "openfunction_train.json",
        rows: 2211,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
    Case {
        file: "openfunction_test.json",
        rows: 112,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
    Case {
        file: "alpaca_train.json",
        rows: 2000,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
    Case {
        file: "dolly_train.json",
        rows: 2000,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
    Case {
        file: "lima_train.json",
        rows: 1029,
        instruction: "instruction",
        output: "output",
        multi_turn: 29,
    },
    Case {
        file: "harmful_behaviors.csv",
        rows: 520,
        instruction: "goal",
        output: "target",
        multi_turn: 0,
    },
    Case {
        file: "alpaca_eval.json",
        rows: 805,
        instruction: "instruction",
        output: "output",
        multi_turn: 0,
    },
];

#[test]
fn every_paper_file_reads_with_the_documented_row_count() {
    let Some(dir) = shared_data() else { return };
    for case in CASES {
        let path = dir.join(case.file);
        let data = Dataset::read(&path, &ReadOptions::default().strict(true))
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        assert_eq!(data.len(), case.rows, "{}", case.file);
        assert_eq!(data.report.rows_total, case.rows, "{}", case.file);
        assert!(data.report.dropped.is_empty(), "{}", case.file);
        assert_eq!(
            data.report.mapping.instruction.as_deref(),
            Some(case.instruction),
            "{}",
            case.file
        );
        assert_eq!(
            data.report.mapping.output.as_deref(),
            Some(case.output),
            "{}",
            case.file
        );
        let multi = data.examples.iter().filter(|e| e.is_multi_turn()).count();
        assert_eq!(multi, case.multi_turn, "{}", case.file);
        let ids: HashSet<&str> = data.examples.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), case.rows, "{}: ids must be unique", case.file);
    }
}

#[test]
fn dolly_inputs_and_lima_history_are_kept() {
    let Some(dir) = shared_data() else { return };
    let dolly = Dataset::read(dir.join("dolly_train.json"), &ReadOptions::default()).unwrap();
    let with_input = dolly
        .examples
        .iter()
        .filter(|e| e.input.as_deref().is_some_and(|i| !i.is_empty()))
        .count();
    assert_eq!(
        with_input, 623,
        "sdft-method.md (c): 623 Dolly rows have a non-empty input"
    );
    let lima = Dataset::read(dir.join("lima_train.json"), &ReadOptions::default()).unwrap();
    let longest = lima.examples.iter().map(|e| e.history.len()).max().unwrap();
    assert_eq!(longest, 9);
    let turns: usize = lima.examples.iter().map(|e| e.history.len()).sum();
    assert_eq!(turns, 15 + 2 * 10 + 3 * 3 + 9);
}

#[test]
fn every_paper_file_round_trips_through_parquet() {
    let Some(dir) = shared_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for case in CASES {
        let data = Dataset::read(dir.join(case.file), &ReadOptions::default()).unwrap();
        let out = tmp.path().join(format!("{}.parquet", case.file));
        sdft_data::write_examples(&out, &data.examples, None).unwrap();
        let back = Dataset::read(&out, &ReadOptions::default().strict(true)).unwrap();
        assert_eq!(back.report.mapping.id.as_deref(), Some("id"));
        assert_eq!(back.examples, data.examples, "{}", case.file);
    }
}

#[test]
fn gsm8k_answers_end_with_the_answer_line() {
    // The paper's preprocessing rewrote `#### N` as a last line "The answer is N.";
    // the math check relies on the reference's last integer.
    let Some(dir) = shared_data() else { return };
    let data = Dataset::read(dir.join("gsm8k_test.json"), &ReadOptions::default()).unwrap();
    for ex in &data.examples {
        let last = ex.output.lines().last().unwrap();
        assert!(last.starts_with("The answer is "), "{}: {last}", ex.id);
        let n = sdft_core::answer::last_integer(&ex.output).unwrap();
        assert_ne!(n, sdft_core::answer::INVALID_ANSWER, "{}", ex.id);
    }
}
