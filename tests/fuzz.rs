//! The loaders under the seeded mutation fuzzer (src/bin/fuzz.rs): a bounded run of 50,000
//! mutated files per loader (weights, the page's MNIST file, IDX), in which every input loads or
//! is refused with an error, and none panics.

use std::process::Command;

#[test]
fn fifty_thousand_mutated_files_per_loader_load_or_are_refused_and_none_panics() {
    let out = Command::new(env!("CARGO_BIN_EXE_fuzz")).args(["all", "--inputs", "50000", "--seed", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the fuzzer failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    print!("{stdout}");
    for target in ["weights", "mnist", "idx"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{target}: "))).unwrap_or_else(|| panic!("no line for {target}:\n{stdout}"));
        let numbers: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .take(4)
            .map(|w| w.parse().unwrap())
            .collect();
        let [inputs, loaded, refused, messages] = numbers[..] else { panic!("{line}") };
        assert_eq!(inputs, 50_000, "{line}");
        assert_eq!(loaded + refused, inputs, "{line}");
        // Most mutations break a file, some leave it loadable (a flipped bit inside a weight), and
        // the refusals come from many different checks, not one early gate.
        assert!(refused > inputs / 2 && loaded > 0, "{line}");
        assert!(messages >= 8, "only {messages} kinds of error: the mutations reach few checks ({line})");
        assert!(line.ends_with(" s)") && line.contains("no panic"), "{line}");
    }
}
