//! Parsing of what workloads print and of /proc files.

/// The line a workload prints when it is ready to be sampled (the sleep workload).
pub const READY_LINE: &str = "rvbench-ready";
const RESULT_PREFIX: &str = "rvbench-result ";

/// Finds `rvbench-result VALUE UNIT` in a workload's stdout (the last one wins)
/// and returns the value, checking the unit when `expect_unit` is given.
pub fn result_line(stdout: &str, expect_unit: Option<&str>) -> Result<f64, String> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| "no `rvbench-result` line in the workload's output".to_string())?;
    let mut it = line.split_whitespace();
    let value: f64 = it
        .next()
        .ok_or_else(|| format!("empty result line `{line}`"))?
        .parse()
        .map_err(|e| format!("bad value in `{line}`: {e}"))?;
    let unit = it.next().unwrap_or("");
    if let Some(want) = expect_unit {
        if unit != want {
            return Err(format!(
                "workload reported unit `{unit}`, expected `{want}`"
            ));
        }
    }
    if !value.is_finite() {
        return Err(format!("non-finite value in `{line}`"));
    }
    Ok(value)
}

/// The parent pid from the text of /proc/PID/stat (the command name may hold
/// spaces and parentheses, so fields are counted after the last `)`).
pub fn stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name: state ppid ...
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The value in kB of a `Key:   123 kB` line of /proc/PID/status or smaps_rollup.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// The `Name:` line of /proc/PID/status.
pub fn status_name(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|n| n.trim().to_string())
}

/// The first `words` NUL-separated words of /proc/PID/cmdline, the first one
/// reduced to its file name, joined by spaces.
pub fn cmdline_head(cmdline: &[u8], words: usize) -> String {
    let mut parts: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .take(words)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if let Some(first) = parts.first_mut() {
        if let Some(base) = first.rsplit('/').next() {
            *first = base.to_string();
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_result_among_other_output() {
        let out = "hello\nrvbench-result 158.979 ns/op\n";
        assert_eq!(result_line(out, Some("ns/op")), Ok(158.979));
        assert_eq!(result_line(out, None), Ok(158.979));
    }

    #[test]
    fn last_result_wins_and_exponents_parse() {
        let out = "rvbench-result 1 ms\nrvbench-result 1.5e+06 ms\n";
        assert_eq!(result_line(out, Some("ms")), Ok(1.5e6));
    }

    #[test]
    fn result_errors() {
        assert!(result_line("", None).is_err());
        assert!(result_line("rvbench-result abc ms", None).is_err());
        assert!(result_line("rvbench-result", None).is_err());
        let e = result_line("rvbench-result 3 us/op", Some("ns/op")).unwrap_err();
        assert!(e.contains("us/op"), "{e}");
        assert!(result_line("rvbench-result nan ms", None).is_err());
    }

    #[test]
    fn ready_line_is_not_a_result() {
        assert!(result_line("rvbench-ready\n", None).is_err());
    }

    #[test]
    fn ppid_after_odd_command_names() {
        assert_eq!(stat_ppid("42 (bash) S 7 42 42 0 -1"), Some(7));
        assert_eq!(stat_ppid("42 (a b) c) R 1234 1 1"), Some(1234));
        assert_eq!(stat_ppid("garbage"), None);
    }

    #[test]
    fn cmdline_heads() {
        assert_eq!(
            cmdline_head(b"/usr/bin/runsc\0--root\0/x\0gofer\0", 2),
            "runsc --root"
        );
        assert_eq!(cmdline_head(b"rvisor\0boot\0", 3), "rvisor boot");
        assert_eq!(cmdline_head(b"", 3), "");
    }

    #[test]
    fn kb_fields() {
        let status = "Name:\trvisor\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(5120));
        assert_eq!(kb_field(status, "VmSwap"), None);
        assert_eq!(kb_field("Pss:   77 kB\nPss_Anon: 5 kB\n", "Pss"), Some(77));
        assert_eq!(status_name(status).as_deref(), Some("rvisor"));
    }
}
