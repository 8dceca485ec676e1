//! Visible skips for tests that need something the machine may lack (real data, the imported
//! SmolLM2, a CUDA device): the test prints `SKIPPED <why>` and passes — unless the environment
//! says the resource must be present (`BEHAVIOR_REQUIRE_DATA=1`, `BEHAVIOR_REQUIRE_MODEL=1`,
//! `BEHAVIOR_REQUIRE_CUDA=1`; CI sets the first two), in which case the test fails.

/// Real data sets under the data root must be present.
pub const REQUIRE_DATA: &str = "BEHAVIOR_REQUIRE_DATA";
/// The bootstrap's SmolLM2 import must be present.
pub const REQUIRE_MODEL: &str = "BEHAVIOR_REQUIRE_MODEL";
/// A CUDA device must be usable.
pub const REQUIRE_CUDA: &str = "BEHAVIOR_REQUIRE_CUDA";

/// Whether `var` is set to `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v.trim() == "1")
}

/// Reports that a test cannot run because `why`: panics (fails the test) when `var` is `1`,
/// otherwise prints `SKIPPED <test>: <why>` to stdout and stderr and returns, so the caller
/// returns too.
///
/// # Panics
/// When `var=1` is set.
pub fn skip(var: &str, test: &str, why: &str) {
    if required(var) {
        panic!("{test}: {var}=1 but {why}");
    }
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_fails_when_required_and_passes_otherwise() {
        // A variable name no one sets: skipping passes.
        skip("BEHAVIOR_REQUIRE_NOTHING_SET_HERE", "t", "absent");
        assert!(!required("BEHAVIOR_REQUIRE_NOTHING_SET_HERE"));
        // The same variable set to 1: skipping panics, naming the variable.
        std::env::set_var("BEHAVIOR_REQUIRE_SKIP_UNIT_TEST", "1");
        let r = std::panic::catch_unwind(|| skip("BEHAVIOR_REQUIRE_SKIP_UNIT_TEST", "t", "absent"));
        std::env::remove_var("BEHAVIOR_REQUIRE_SKIP_UNIT_TEST");
        let msg = r.expect_err("must fail when required");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("BEHAVIOR_REQUIRE_SKIP_UNIT_TEST=1"), "{msg}");
    }
}
