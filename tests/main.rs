//! The native tests, as one test binary: each file beside this one is a module of it, so the
//! crate and its dependencies are linked once rather than once per file, and the real MNIST
//! files (`common::mnist`) are read once for all of them.

mod common;

mod autoencoder;
mod beta_table;
mod conv;
mod engine;
mod explore;
mod fuzz;
mod gpu;
mod gpu_kernels;
mod kinds;
mod layers;
mod mnist;
mod model;
mod quality;
mod resume;
mod sampler;
mod shipped;
mod trainer_cli;
mod time_to_digits;
mod training;
mod weights;

/// Every test file in tests/ is one of the modules above: none is left out of the run.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared: Vec<String> =
        include_str!("main.rs").lines().filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';')).map(String::from).collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("main.rs"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    files.sort();
    for f in &files {
        assert!(declared.contains(f), "tests/{f}.rs is not declared in tests/main.rs, so it never runs");
    }
    assert!(declared.contains(&"common".to_string()));
}
