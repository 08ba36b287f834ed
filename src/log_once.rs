//! One log line per distinct problem, for the tasks that retry on a period (a watched file every second, the
//! certificate Secret every resync): a problem that persists is logged when it appears, again only if it changes,
//! and once more when it is gone — not at every poll.

use std::fmt::Display;

/// The last problem logged by one periodic check.
#[derive(Debug)]
pub struct ProblemLog {
    /// What the check is about, first in every line: "certificate Secret irsa-webhook-certs".
    subject: String,
    last: Option<String>,
    /// Lines logged so far: (problems, recoveries).
    lines: (u64, u64),
    /// Problems at error level rather than warning (a problem that takes something away from pods).
    error_level: bool,
}

impl ProblemLog {
    pub fn new(subject: impl Into<String>) -> Self {
        Self { subject: subject.into(), last: None, lines: (0, 0), error_level: false }
    }

    /// Logs problems at error level.
    pub fn at_error_level(mut self) -> Self {
        self.error_level = true;
        self
    }

    /// Logs `problem` as a warning, with what is done about it, unless it is the problem already logged. Returns
    /// whether it logged.
    pub fn problem(&mut self, problem: &dyn Display, meanwhile: &str) -> bool {
        let text = problem.to_string();
        if self.last.as_deref() == Some(text.as_str()) {
            return false;
        }
        if self.error_level {
            tracing::error!(error = %text, "{}: {meanwhile}", self.subject);
        } else {
            tracing::warn!(error = %text, "{}: {meanwhile}", self.subject);
        }
        self.last = Some(text);
        self.lines.0 += 1;
        true
    }

    /// The check succeeded: if a problem was logged, says once that it is over.
    pub fn resolved(&mut self) {
        if let Some(problem) = self.last.take() {
            tracing::info!(previous_error = %problem, "{}: working again", self.subject);
            self.lines.1 += 1;
        }
    }

    /// Whether a problem is logged and not yet resolved.
    pub fn is_failing(&self) -> bool {
        self.last.is_some()
    }

    /// Lines logged so far: (problems, recoveries).
    pub fn lines_logged(&self) -> (u64, u64) {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persisting_problem_is_logged_once_and_a_new_one_again() {
        let mut log = ProblemLog::new("thing");
        assert!(log.problem(&"broken", "keeping the old one"));
        assert!(!log.problem(&"broken", "keeping the old one"), "the same problem, not logged again");
        assert!(log.problem(&"broken differently", "keeping the old one"));
        assert!(log.is_failing());
        log.resolved();
        log.resolved();
        assert!(!log.is_failing());
        assert_eq!(log.lines_logged(), (2, 1));
        assert!(log.problem(&"broken differently", "keeping the old one"), "after recovery, a relapse is news");
    }
}
