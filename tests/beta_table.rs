//! The `beta-table` command (the README's β table): VAEs trained at several KL weights trade
//! reconstruction for a latent nearer N(0, I) as β grows. A short budget of steps here; the
//! README's table is the command's full run.

use std::process::Command;

#[test]
fn a_larger_kl_weight_trades_reconstruction_for_kl() {
    let out = Command::new(env!("CARGO_BIN_EXE_beta-table"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--betas", "0.5,1,4", "--steps", "300", "--samples", "1000"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "beta-table failed: {}", String::from_utf8_lossy(&out.stderr));
    println!("{printed}");
    // | β | steps | epochs | test BCE | test KL | test loss | Fréchet distance |
    let rows: Vec<Vec<f64>> = printed
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| β"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), [0.5, 1.0, 4.0], "{printed}");
    for r in &rows {
        assert_eq!(r[1], 300.0);
        assert!((r[5] - (r[3] + r[4])).abs() <= 0.02, "test loss {} ≠ BCE {} + KL {}", r[5], r[3], r[4]);
        assert!(r[6].is_finite() && r[6] > 0.0, "Fréchet distance {}", r[6]);
    }
    for w in rows.windows(2) {
        assert!(w[1][3] > w[0][3], "BCE did not rise from β {} to β {}:\n{printed}", w[0][0], w[1][0]);
        assert!(w[1][4] < w[0][4], "KL did not fall from β {} to β {}:\n{printed}", w[0][0], w[1][0]);
    }

    let refused = Command::new(env!("CARGO_BIN_EXE_beta-table")).args(["--beta", "2"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("one VAE per β of --betas"));
}
