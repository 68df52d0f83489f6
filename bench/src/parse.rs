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

/// What the receiver got, in bits per second, from `iperf3 -J` output
/// (`end.sum_received.bits_per_second`; with `-R` the receiver is the client), or
/// iperf3's own `error`.
pub fn iperf3_bits_per_second(out: &str) -> Result<f64, String> {
    let json = match (out.find('{'), out.rfind('}')) {
        (Some(a), Some(b)) if a < b => &out[a..=b],
        _ => return Err("no JSON in iperf3's output".into()),
    };
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("iperf3's JSON does not parse: {e}"))?;
    if let Some(e) = v["error"].as_str() {
        return Err(format!("iperf3: {e}"));
    }
    let sum = &v["end"]["sum_received"];
    let bps = sum["bits_per_second"]
        .as_f64()
        .ok_or("iperf3's JSON has no end.sum_received.bits_per_second")?;
    if sum["bytes"].as_u64() == Some(0) || !bps.is_finite() || bps <= 0.0 {
        return Err("iperf3 moved no data".into());
    }
    Ok(bps)
}

/// The figures of a `wrk` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrk {
    pub requests: u64,
    pub per_sec: f64,
    /// connect + read + write + timeout errors.
    pub socket_errors: u64,
    pub non_2xx: u64,
}

/// Parses wrk's text output (`N requests in ...`, `Requests/sec:`, and the
/// `Socket errors:` and `Non-2xx or 3xx responses:` lines it prints only when non-zero).
pub fn wrk(out: &str) -> Result<Wrk, String> {
    let mut requests = None;
    let mut per_sec = None;
    let mut socket_errors = 0;
    let mut non_2xx = 0;
    for l in out.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            per_sec = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().map_err(|_| format!("bad line `{l}`"))?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // connect 0, read 12, write 0, timeout 3
            for part in v.split(',') {
                let n = part.split_whitespace().nth(1);
                socket_errors += n
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("bad line `{l}`"))?;
            }
        } else if let Some((n, rest)) = l.split_once(" requests in ") {
            if !rest.is_empty() {
                requests = n.trim().parse().ok();
            }
        }
    }
    match (requests, per_sec) {
        (Some(requests), Some(per_sec)) if per_sec.is_finite() => Ok(Wrk {
            requests,
            per_sec,
            socket_errors,
            non_2xx,
        }),
        _ => Err("no `N requests in` and `Requests/sec:` lines in wrk's output".into()),
    }
}

/// The files `ldd` names: `libx.so => /path (0x...)` and `/path (0x...)` lines
/// (the vDSO has no file and is left out).
pub fn ldd_paths(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = l.split_once("=>").map_or(l, |(_, p)| p.trim());
            let p = p.split_whitespace().next()?;
            p.starts_with('/').then(|| p.to_string())
        })
        .collect()
}

/// The time a thread has run on a CPU, in ns: the first field of
/// /proc/PID/task/TID/schedstat.
pub fn schedstat_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
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

    const IPERF3_JSON: &str = r#"{
	"start":	{"connected": [], "version": "iperf 3.12"},
	"intervals":	[],
	"end":	{
		"sum_sent":	{"start": 0, "end": 2.0, "seconds": 2.0, "bytes": 800000000,
			"bits_per_second": 3200000000.5, "retransmits": 0, "sender": true},
		"sum_received":	{"start": 0, "end": 2.001633, "seconds": 2.001633,
			"bytes": 785907575, "bits_per_second": 3141065619.9213343, "sender": true}
	}
}"#;

    #[test]
    fn iperf3_takes_what_the_receiver_got() {
        assert_eq!(iperf3_bits_per_second(IPERF3_JSON), Ok(3141065619.9213343));
        // Other lines around the JSON (a shell's echo) do not matter.
        let noisy = format!("starting\n{IPERF3_JSON}\n");
        assert_eq!(iperf3_bits_per_second(&noisy), Ok(3141065619.9213343));
    }

    #[test]
    fn iperf3_errors() {
        let refused = r#"{"start": {"connected": []}, "intervals": [], "end": {},
            "error": "unable to connect to server: Connection refused"}"#;
        let e = iperf3_bits_per_second(refused).unwrap_err();
        assert_eq!(e, "iperf3: unable to connect to server: Connection refused");
        assert!(iperf3_bits_per_second("").is_err());
        assert!(iperf3_bits_per_second("{ not json }").is_err());
        assert!(iperf3_bits_per_second(r#"{"end": {}}"#).is_err());
        let nothing = r#"{"end": {"sum_received": {"bytes": 0, "bits_per_second": 0}}}"#;
        assert_eq!(
            iperf3_bits_per_second(nothing),
            Err("iperf3 moved no data".into())
        );
    }

    #[test]
    fn wrk_clean_run() {
        let out = "Running 2s test @ http://127.0.0.1:18080/index.html
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.37ms    5.19ms  63.48ms   93.14%
    Req/Sec     1.60k   491.73     2.59k    70.00%
  6405 requests in 2.02s, 1.30MB read
Requests/sec:   3174.73
Transfer/sec:    660.37KB
";
        assert_eq!(
            wrk(out),
            Ok(Wrk {
                requests: 6405,
                per_sec: 3174.73,
                socket_errors: 0,
                non_2xx: 0
            })
        );
    }

    #[test]
    fn wrk_counts_errors() {
        let out = "  120 requests in 5.00s, 10.00KB read
  Socket errors: connect 2, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:     24.00
";
        let w = wrk(out).unwrap();
        assert_eq!((w.requests, w.socket_errors, w.non_2xx), (120, 17, 7));
        assert_eq!(w.per_sec, 24.0);
    }

    #[test]
    fn wrk_rejects_other_output() {
        assert!(wrk("").is_err());
        assert!(wrk("unable to connect to 127.0.0.1:1 Connection refused\n").is_err());
        assert!(wrk("Requests/sec: 5\n").is_err());
        assert!(wrk("1 requests in 1s\nRequests/sec: 1\nSocket errors: x\n").is_err());
    }

    #[test]
    fn ldd_files() {
        let out = "\tlinux-vdso.so.1 (0x00007fd6eccf3000)
\tlibiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x00007fd6eccac000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd6ecaca000)
\tlibgone.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007fd6eccf5000)
";
        assert_eq!(
            ldd_paths(out),
            [
                "/lib/x86_64-linux-gnu/libiperf.so.0",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn schedstat_run_time() {
        assert_eq!(schedstat_ns("123456789 5000 42\n"), Some(123456789));
        assert_eq!(schedstat_ns(""), None);
        assert_eq!(schedstat_ns("x 1 2"), None);
    }
}
