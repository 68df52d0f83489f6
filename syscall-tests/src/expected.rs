//! The expected-failures file: lines `platform family/case  # reason`.
//!
//! `platform` is a platform name (`ptrace`, `kvm`, ...) or `*` for every rvisor
//! platform. Blank lines and lines starting with `#` are ignored. Expected failures
//! only apply to runs under rvisor: a case that fails natively is always an error.

use std::fmt;

/// One entry of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub platform: String,
    /// `family/case`.
    pub case: String,
    pub reason: String,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Default, Clone)]
pub struct ExpectedFailures {
    pub entries: Vec<Entry>,
}

impl ExpectedFailures {
    /// Parses the whole file. Returns the entries that parsed and the errors of the
    /// lines that did not.
    pub fn parse(text: &str) -> (ExpectedFailures, Vec<ParseError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let (body, reason) = match raw.split_once('#') {
                Some((b, r)) => (b, r.trim()),
                None => (raw, ""),
            };
            let words: Vec<&str> = body.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            if words.len() != 2 {
                errors.push(ParseError {
                    line,
                    message: format!(
                        "expected `platform family/case  # reason`, got {:?}",
                        raw.trim()
                    ),
                });
                continue;
            }
            let (platform, case) = (words[0], words[1]);
            if platform == "native" {
                errors.push(ParseError {
                    line,
                    message: "native failures cannot be expected: fix the case instead".into(),
                });
                continue;
            }
            if !valid_case_id(case) {
                errors.push(ParseError {
                    line,
                    message: format!("{case:?} is not of the form family/case"),
                });
                continue;
            }
            if reason.is_empty() {
                errors.push(ParseError {
                    line,
                    message: format!("{platform} {case}: give a reason after `#`"),
                });
                continue;
            }
            entries.push(Entry {
                platform: platform.to_string(),
                case: case.to_string(),
                reason: reason.to_string(),
                line,
            });
        }
        (ExpectedFailures { entries }, errors)
    }

    /// The entry saying `case` (`family/case`) is expected to fail on `platform`.
    pub fn lookup(&self, platform: &str, case: &str) -> Option<&Entry> {
        // An exact platform entry wins over `*`.
        self.entries
            .iter()
            .find(|e| e.platform == platform && e.case == case)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.platform == "*" && e.case == case)
            })
    }
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `family/case` with both parts non-empty identifiers.
pub fn valid_case_id(s: &str) -> bool {
    match s.split_once('/') {
        Some((family, case)) => valid_ident(family) && valid_ident(case),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_comments_and_blank_lines() {
        let text = "# header comment\n\
                    \n\
                    ptrace signals/sigaltstack_used_with_sa_onstack  # no alt stacks yet\n\
                    *   epoll/nested_epoll # nested epoll unsupported\n";
        let (ef, errors) = ExpectedFailures::parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ef.entries.len(), 2);
        assert_eq!(
            ef.entries[0],
            Entry {
                platform: "ptrace".into(),
                case: "signals/sigaltstack_used_with_sa_onstack".into(),
                reason: "no alt stacks yet".into(),
                line: 3,
            }
        );
        assert_eq!(ef.entries[1].platform, "*");
        assert_eq!(ef.entries[1].reason, "nested epoll unsupported");
        assert_eq!(ef.entries[1].line, 4);
    }

    #[test]
    fn lookup_prefers_exact_platform_then_wildcard() {
        let (ef, errors) = ExpectedFailures::parse(
            "* a/b # everywhere\nkvm a/b # kvm specific\nptrace c/d # only ptrace\n",
        );
        assert!(errors.is_empty());
        assert_eq!(ef.lookup("kvm", "a/b").unwrap().reason, "kvm specific");
        assert_eq!(ef.lookup("ptrace", "a/b").unwrap().reason, "everywhere");
        assert_eq!(ef.lookup("ptrace", "c/d").unwrap().reason, "only ptrace");
        assert!(ef.lookup("kvm", "c/d").is_none());
        assert!(ef.lookup("ptrace", "a/bb").is_none());
    }

    #[test]
    fn rejects_malformed_lines() {
        let text = "ptrace\n\
                    ptrace a/b c/d # too many\n\
                    ptrace nocase # bad id\n\
                    native a/b # native\n\
                    ptrace a/b\n\
                    ptrace a/ # empty case\n\
                    ptrace ok/fine # good\n";
        let (ef, errors) = ExpectedFailures::parse(text);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(ef.entries.len(), 1);
        assert_eq!(ef.entries[0].case, "ok/fine");
        assert!(errors[4].to_string().starts_with("line 5: "));
    }

    #[test]
    fn case_ids() {
        assert!(valid_case_id("file_io/open_missing_enoent"));
        assert!(valid_case_id("poll-select/x1"));
        assert!(!valid_case_id("file_io"));
        assert!(!valid_case_id("/x"));
        assert!(!valid_case_id("a/b/c"));
        assert!(!valid_case_id("a/b c"));
    }
}
