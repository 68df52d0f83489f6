//! `rvisor compare`: run commands on the host and in a fresh sandbox and show the two
//! outputs side by side, so a person sees what a workload sees differently.

use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

/// What `rvisor compare` runs when given no command.
pub const DEFAULT_SET: &[&str] = &[
    "uname -a",
    "cat /proc/version",
    "dmesg | head -n 5",
    "hostname",
    "id",
    "ls /proc",
    "nproc",
    "grep MemTotal /proc/meminfo",
    "mount",
];

pub struct Run {
    pub output: String,
    pub status: i32,
}

fn capture(mut cmd: Command) -> Result<Run> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running the command")?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    use std::os::unix::process::ExitStatusExt;
    let status = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Ok(Run { output, status })
}

/// One comparison: the command as shown, and how to run it (argv, or a shell line).
pub struct Item {
    pub shown: String,
    pub argv: Vec<String>,
}

pub fn items(command: &[String]) -> Vec<Item> {
    if command.is_empty() {
        DEFAULT_SET
            .iter()
            .map(|c| Item {
                shown: c.to_string(),
                argv: vec!["/bin/sh".into(), "-c".into(), c.to_string()],
            })
            .collect()
    } else {
        vec![Item {
            shown: command.join(" "),
            argv: command.to_vec(),
        }]
    }
}

pub fn run_host(item: &Item, cwd: Option<&str>, env: &[String]) -> Result<Run> {
    let mut c = Command::new(&item.argv[0]);
    c.args(&item.argv[1..]);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        c.env(k, v);
    }
    capture(c)
}

pub fn run_sandbox(item: &Item, do_flags: &[String]) -> Result<Run> {
    let me = std::env::current_exe()?;
    let mut c = Command::new(me);
    c.arg("do").args(do_flags).arg("--").args(&item.argv);
    capture(c)
}

fn width() -> usize {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_col >= 40 {
        ws.ws_col as usize
    } else {
        160
    }
}

fn fit(s: &str, w: usize) -> String {
    let s = s.replace('\t', "    ");
    let mut out: String = s.chars().take(w).collect();
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', w - n));
    out
}

/// Side by side: host on the left, sandbox on the right; `|` marks lines that differ,
/// `<` and `>` lines only one side has.
pub fn render(
    out: &mut impl Write,
    item: &Item,
    host: &Run,
    sandbox: &Run,
    color: bool,
    total: usize,
) -> Result<()> {
    let col = (total.saturating_sub(3)) / 2;
    let (red, green, bold, reset) = if color {
        ("\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    writeln!(out, "{bold}== {}{reset}", item.shown)?;
    let left = fit(&format!("host (exit {})", host.status), col);
    writeln!(
        out,
        "{bold}{left} | sandbox (exit {}){reset}",
        sandbox.status
    )?;
    let h: Vec<&str> = host.output.lines().collect();
    let s: Vec<&str> = sandbox.output.lines().collect();
    for i in 0..h.len().max(s.len()) {
        let (l, r) = (h.get(i), s.get(i));
        let mark = match (l, r) {
            (Some(a), Some(b)) if a == b => ' ',
            (Some(_), Some(_)) => '|',
            (Some(_), None) => '<',
            _ => '>',
        };
        let left = fit(l.unwrap_or(&""), col);
        let right: String = r.unwrap_or(&"").chars().take(col).collect();
        if mark == ' ' {
            writeln!(out, "{left} {mark} {right}")?;
        } else {
            writeln!(
                out,
                "{red}{left}{reset} {bold}{mark}{reset} {green}{right}{reset}"
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

pub fn compare(
    do_flags: &[String],
    cwd: Option<&str>,
    env: &[String],
    command: &[String],
    json: bool,
) -> Result<i32> {
    let mut results = vec![];
    for item in items(command) {
        let host = run_host(&item, cwd, env)?;
        let sandbox = run_sandbox(&item, do_flags)?;
        results.push((item, host, sandbox));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(i, h, s)| {
                serde_json::json!({
                    "command": i.shown,
                    "host": {"output": h.output, "exit_status": h.status},
                    "sandbox": {"output": s.output, "exit_status": s.status},
                    "same": h.output == s.output && h.status == s.status,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        let color = std::io::stdout().is_terminal();
        let w = width();
        for (i, h, s) in &results {
            render(&mut out, i, h, s, color, w)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_marks_differences() {
        let item = Item {
            shown: "x".into(),
            argv: vec![],
        };
        let h = Run {
            output: "same\nhost only line\nextra\n".into(),
            status: 0,
        };
        let s = Run {
            output: "same\nsandbox line\n".into(),
            status: 1,
        };
        let mut buf = vec![];
        render(&mut buf, &item, &h, &s, false, 43).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "== x");
        assert!(
            lines[1].starts_with("host (exit 0)") && lines[1].ends_with("| sandbox (exit 1)"),
            "{text}"
        );
        assert_eq!(lines[2], format!("{}   same", fit("same", 20)));
        assert_eq!(
            lines[3],
            format!("{} | sandbox line", fit("host only line", 20))
        );
        assert_eq!(lines[4], format!("{} < ", fit("extra", 20)));
    }

    #[test]
    fn default_set_when_no_command() {
        let v = items(&[]);
        assert_eq!(v.len(), DEFAULT_SET.len());
        assert_eq!(v[0].argv, vec!["/bin/sh", "-c", "uname -a"]);
        let one = items(&["uname".into(), "-r".into()]);
        assert_eq!(one[0].argv, vec!["uname", "-r"]);
    }
}
