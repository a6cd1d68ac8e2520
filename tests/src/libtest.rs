//! Reading the outcome of one test from what a libtest binary printed (`--exact NAME`,
//! `--color never`): how the guest tests learn what happened inside the guest.

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Passed,
    Failed,
    /// With the reason libtest gave, if any.
    Ignored(Option<String>),
    /// No result line for this test: the binary did not have it, or died first.
    Missing,
}

/// The outcome of `name` in `output`, from libtest's `test NAME ... RESULT` line.
pub fn outcome(output: &str, name: &str) -> Outcome {
    let prefix = format!("test {name} ... ");
    let Some(result) = output.lines().find_map(|l| l.strip_prefix(&prefix)) else {
        return Outcome::Missing;
    };
    match result.trim() {
        "ok" => Outcome::Passed,
        "ignored" => Outcome::Ignored(None),
        r => match r.strip_prefix("ignored, ") {
            Some(why) => Outcome::Ignored(Some(why.to_string())),
            None => Outcome::Failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSED: &str = "\nrunning 1 test\ntest tcp_connect ... ok\n\n\
        test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out\n";

    #[test]
    fn each_result_line_is_read() {
        assert_eq!(outcome(PASSED, "tcp_connect"), Outcome::Passed);
        let failed = "running 1 test\ntest dns ... FAILED\n\nfailures:\n\n---- dns stdout ----\n\
            thread 'dns' panicked at tests/dns.rs:12:5:\nno event\n";
        assert_eq!(outcome(failed, "dns"), Outcome::Failed);
        let ignored = "test bench ... ignored, run by hand\n";
        assert_eq!(
            outcome(ignored, "bench"),
            Outcome::Ignored(Some("run by hand".into()))
        );
        assert_eq!(
            outcome("test bench ... ignored\n", "bench"),
            Outcome::Ignored(None)
        );
    }

    #[test]
    fn another_tests_line_or_none_is_missing() {
        // A prefix of another test's name is not that test.
        assert_eq!(outcome(PASSED, "tcp"), Outcome::Missing);
        assert_eq!(
            outcome("running 0 tests\n", "tcp_connect"),
            Outcome::Missing
        );
    }
}
