//! Real programs (issue 3, section 2): bash, coreutils and friends, python3 and gcc run
//! unchanged under `rvisor do`, each compared with the same command run natively
//! (stdout and exit status).
//!
//! Every script is written into a fresh `TempDir` on the host's /tmp, which the sandbox
//! sees through the gofer. Scripts that write files make their own `mktemp -d` work
//! directory and remove it on exit, so the native run (on the host) and the sandboxed run
//! (in the sandbox's overlay) never see each other's files; such names never reach
//! stdout unmasked (see `mask_mktemp`).
//!
//! Debian packages these tests need on the host: bash, coreutils, diffutils, findutils,
//! grep, sed, mawk (or gawk), tar, gzip, tzdata, perl (Digest::MD5 is in libperl5.36,
//! not perl-base), sqlite3, python3 (python3-minimal + libpython3.11-stdlib), gcc,
//! libc6-dev and binutils (nm).

mod common;

use std::path::Path;

use common::*;

/// Write `body` as `name` into a fresh temp dir; returns the dir (keep it alive while
/// the runs use the file) and the file's path.
fn script(tag: &str, name: &str, body: &str) -> (TempDir, String) {
    let dir = TempDir::new(tag);
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

/// Replace every `prefix` + the `mktemp` suffix that follows it (`XXXXXX`: six
/// characters from [A-Za-z0-9]) with `prefix` + `XXXXXX`.
fn mask_mktemp(s: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let after = i + prefix.len();
        out.push_str(&rest[..after]);
        let tail = &rest[after..];
        let n = tail
            .bytes()
            .take(6)
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if n == 6 {
            out.push_str("XXXXXX");
            rest = &tail[6..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `run` with its stdout passed through `f` (the status and stderr are kept as is).
fn normalised(run: Run, f: &dyn Fn(&str) -> String) -> Run {
    Run {
        stdout: f(&run.stdout),
        ..run
    }
}

/// Run `argv` natively and under `rvisor do`, normalise both stdouts with `f`, assert
/// that the normalised stdout and the exit status are the same. Returns the
/// normalised runs.
fn compare_with(argv: &[&str], f: &dyn Fn(&str) -> String) -> (Run, Run) {
    let n = normalised(native(argv), f);
    let s = normalised(sandboxed(argv), f);
    assert_same(&n, &s);
    (n, s)
}

/// Asserts the native run did what the script expects (a broken test, not an rvisor
/// bug, when this fails): the given exit status, and every marker line in stdout.
fn check_native(n: &Run, status: i32, markers: &[&str]) {
    assert_eq!(
        n.shell_status(),
        status,
        "the NATIVE run has an unexpected status (broken test or host set-up)\n{}",
        n.describe()
    );
    for m in markers {
        assert!(
            n.stdout.lines().any(|l| l == *m),
            "the NATIVE run lacks the line {m:?} (broken test or host set-up)\n{}",
            n.describe()
        );
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing on this host: install the Debian package `{package}` \
         (apt-get install {package}); this test cannot run without it"
    );
}

// ---------------------------------------------------------------------------------
// bash

const BASH_SCRIPT: &str = r##"set -u

# functions with local and indexed arrays
sum_list() {
    local -a xs=("$@")
    local total=0 x
    for x in "${xs[@]}"; do total=$((total + x)); done
    echo "$total"
}
echo "sum: $(sum_list 1 2 3 4 5 10)"
fact() {
    local n=$1
    if (( n <= 1 )); then echo 1; else echo $(( n * $(fact $((n - 1))) )); fi
}
echo "fact 10: $(fact 10)"
v=global
shadow() { local v=local; echo "inside: $v"; }
shadow
echo "outside: $v"
arr=(zero one two three four)
arr+=(five)
echo "slice: ${arr[*]:1:3} last: ${arr[-1]} idx: ${!arr[*]} n: ${#arr[@]}"
mapfile -t lines < <(printf 'l1\nl2\nl3\n')
echo "mapfile: ${#lines[@]} ${lines[2]}"

# associative arrays
declare -A color=([apple]=red [banana]=yellow [grape]=purple)
color[lime]=green
unset 'color[grape]'
for k in $(printf '%s\n' "${!color[@]}" | sort); do echo "color[$k]=${color[$k]}"; done
echo "count: ${#color[@]}"
[[ -v color[apple] ]] && echo "apple is set"
[[ -v color[grape] ]] || echo "grape is unset"
declare -A wc_of
for w in a b a c a b; do wc_of[$w]=$(( ${wc_of[$w]:-0} + 1 )); done
for k in a b c; do printf '%s=%s ' "$k" "${wc_of[$k]}"; done; echo

# nested command substitution
echo "nested: $(echo "a$(echo "b$(echo "c$(printf %s d)")")")"
echo "lengths: $(echo $(( $(echo -n hello | wc -c) + $(echo -n hi | wc -c) )))"
echo "backticks: `echo outer $(echo inner)`"

# process substitution
cat <(echo from-procsub)
paste -d: <(seq 3) <(seq 4 6)
sort -n < <(printf '%s\n' 30 4 200)
diff <(printf '%s\n' 1 2 3) <(printf '%s\n' 1 2 4); echo "diff status: $?"
cmp -s <(seq 100) <(seq 100) && echo "cmp same"
echo hello > >(tr a-z A-Z); wait $!

# read in a while loop
n=0
while IFS=: read -r user _ uid _; do
    n=$((n + 1))
    [[ $user == root ]] && echo "root uid: $uid"
done < <(printf 'root:x:0:0\ndaemon:x:1:1\nbin:x:2:2\n')
echo "lines read: $n"
total=0
while read -r a b; do total=$((total + a * b)); done <<'DOC'
1 2
3 4
5 6
DOC
echo "products: $total"
seq 5 | while read -r i; do echo -n "$i,"; done; echo

# here-documents: expanded, quoted, tab-stripped, here-string
name=world
cat <<EOT
hello $name $((6 * 7)) $(echo sub)
EOT
cat <<'EOT'
literal $name $((1+1))
EOT
cat <<-EOT
	tab-stripped $name
	EOT
tr a-z A-Z <<< "here-string $name"

# trap USR1 and kill -USR1 $$
got=0
trap 'got=$((got + 1)); echo "USR1 trapped"' USR1
kill -USR1 $$
kill -USR1 $$
echo "traps run: $got"
trap - USR1
( trap 'echo "subshell exit trap"' EXIT; echo "in subshell" )
( kill -TERM $BASHPID; echo "not reached" ); echo "subshell killed: $?"

# ulimit -n: the inherited limit, then lower it and read it back
echo "ulimit -n: $(ulimit -n) hard: $(ulimit -Hn)"
(
    ulimit -n 256 && echo "ulimit -n now $(ulimit -n)"
    ulimit -Sn 64; echo "soft $(ulimit -Sn)"
    exec 100>/dev/null && echo "fd 100 opened" || echo "fd 100 refused"
    exec 50>/dev/null && echo "fd 50 opened"
) 2>&1 | sed 's/^.*: line [0-9]*: /bash: /'

# wait -n: the fastest job finishes first and its status is returned
( sleep 0.5; exit 3 ) &
( sleep 0.05; exit 7 ) &
wait -n; echo "wait -n first: $?"
wait -n; echo "wait -n second: $?"
wait -n; echo "wait -n none left: $?"
sleep 0.01 & p=$!
wait "$p"; echo "wait pid: $?"
(exit 42) & wait $!; echo "wait status: $?"

# odds and ends
s="The quick brown fox"
echo "${s^^} ${s,,} ${#s} ${s// /_} ${s#* } ${s%% *}"
printf '%05d|%-6s|%x\n' 42 ab 255
case "foo.tar.gz" in *.tar.gz) echo "case: tarball";; *) echo "case: other";; esac
[[ "abc123" =~ ^([a-z]+)([0-9]+)$ ]] && echo "regex: ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
echo {a..e} {1..10..3}
f() { return 9; }; f; echo "function status: $?"
set -o pipefail; false | true; echo "pipefail: $?"; set +o pipefail
echo "end"
exit 5
"##;

#[test]
fn bash_script() {
    let (_dir, path) = script("bash", "script.sh", BASH_SCRIPT);
    let (n, _) = compare(&["/bin/bash", &path]);
    check_native(
        &n,
        5,
        &[
            "sum: 25",
            "fact 10: 3628800",
            "count: 3",
            "nested: abcd",
            "diff status: 1",
            "HELLO",
            "traps run: 2",
            "wait -n first: 7",
            "wait -n second: 3",
            "wait -n none left: 127",
            "end",
        ],
    );
}

// ---------------------------------------------------------------------------------
// coreutils and friends

/// Preamble for the shell scripts below: a private work dir removed on exit.
const WORKDIR: &str = r##"set -u
W=$(mktemp -d /tmp/rvisor-rp.XXXXXX) || exit 90
trap 'rm -rf "$W"' EXIT
step() { echo "== $*"; }
"##;

fn shell_script(tag: &str, body: &str) -> (TempDir, String) {
    script(tag, "script.sh", &format!("{WORKDIR}{body}"))
}

fn mask_w(s: &str) -> String {
    mask_mktemp(s, "/tmp/rvisor-rp.")
}

const CP_TAR: &str = r##"
step cp -a and diff -r
cp -a /usr/share/doc/bash "$W/doc" && diff -r /usr/share/doc/bash "$W/doc" && echo "identical tree"
echo "files: $(find "$W/doc" -type f | wc -l) dirs: $(find "$W/doc" -type d | wc -l)"
# cp -a preserves modes, mtimes and sizes
(cd /usr/share/doc/bash && find . -printf '%p %m %TY-%Tm-%Td %TT %s %y\n' | sort) > "$W/src.list"
(cd "$W/doc" && find . -printf '%p %m %TY-%Tm-%Td %TT %s %y\n' | sort) > "$W/dst.list"
diff "$W/src.list" "$W/dst.list" && echo "modes, mtimes and sizes preserved"
echo "changed" >> "$W/doc/RBASH"
diff -rq /usr/share/doc/bash "$W/doc"; echo "diff after change: $?"
rm "$W/doc/INTRO.gz"
diff -rq /usr/share/doc/bash "$W/doc" | sort; echo "diff after rm: ${PIPESTATUS[0]}"

step tar round trip
tar -C /usr/share/doc -czf "$W/doc.tgz" bash && echo "tar czf ok"
tar -tzf "$W/doc.tgz" | sort
gzip -t "$W/doc.tgz" && echo "gzip -t ok"
mkdir "$W/untar" && tar -C "$W/untar" -xzf "$W/doc.tgz" && diff -r /usr/share/doc/bash "$W/untar/bash" && echo "untar identical"
tar -C "$W/untar" -cf - bash | tar -tvf - | awk '{print $1, $3, $NF}' | sort -k3
echo end
"##;

#[test]
fn coreutils_cp_a_diff_r_and_tar() {
    let (_dir, path) = shell_script("cp-tar", CP_TAR);
    let (n, _) = compare_with(&["/bin/bash", &path], &mask_w);
    check_native(
        &n,
        0,
        &[
            "identical tree",
            "modes, mtimes and sizes preserved",
            "diff after change: 1",
            "diff after rm: 1",
            "tar czf ok",
            "gzip -t ok",
            "untar identical",
            "end",
        ],
    );
}

const TEXT_TOOLS: &str = r##"
step seq sort head
seq 1 200000 | sort -rn | head -1
seq 1 200000 | sort -R | sort -n | md5sum
seq -w 1 5 | tac | tr '\n' ' '; echo
seq 1 100000 | tail -n 3 | paste -sd+

step du stat date
mkdir "$W/du"
head -c 100000 /dev/zero > "$W/du/a"
head -c 5000 /dev/urandom > "$W/du/b"
# apparent sizes of the files only: a directory's own size depends on the file system
echo "du -sb minus dir: $(( $(du -sb "$W/du" | cut -f1) - $(stat -c %s "$W/du") ))"
du -sk "$W/du/a" | sed "s|$W|W|"
du -b "$W/du/a" "$W/du/b" | sed "s|$W|W|"
stat -c '%n %s %F %a %h' "$W/du/a" | sed "s|$W|W|"
stat -c '%F %a' "$W/du"
stat -L -c '%F %a' /usr/share/doc/bash/README.gz /etc/passwd
ln -s a "$W/du/link"; stat -c '%F %N' "$W/du/link" | sed "s|$W|W|"
ln "$W/du/a" "$W/du/hard"; stat -c '%h' "$W/du/a"; du -sb "$W/du/a" "$W/du/hard" | wc -l
touch -d '2001-02-03 04:05:06.5 UTC' "$W/du/b"
TZ=UTC stat -c '%y %Y' "$W/du/b"
chmod 0751 "$W/du/a"; stat -c '%A %a' "$W/du/a"
date -u -d @0
TZ=UTC date -d @0
date -u -d @1234567890 '+%Y-%m-%d %H:%M:%S %A %j %s'
TZ=UTC date -d '2024-02-29 12:00 +1 day' +%F
TZ=America/New_York date -d '2024-07-01 12:00 UTC' '+%H:%M %Z'
date -u +%Y | grep -qx '20[2-9][0-9]' && echo "year plausible"

step find -newer
mkdir "$W/f"; touch -d '2000-01-01' "$W/f/old1" "$W/f/old2"; touch -d '2010-01-01' "$W/f/ref"
touch "$W/f/new1"; touch -d '2030-01-01' "$W/f/new2"; mkdir "$W/f/sub"; touch "$W/f/sub/new3"
(cd "$W/f" && find . -newer ref -type f | sort)
(cd "$W/f" && find . ! -newer ref -type f | sort)
(cd "$W/f" && find . -name 'old*' -exec basename {} \; | sort)
(cd "$W/f" && find . -mindepth 1 -maxdepth 1 -type d)
find /usr/share/doc/bash -type f -size +100k | sort

step xargs -P4
seq 1 40 | xargs -P4 -n1 sh -c 'echo $(( $1 * $1 ))' _ | sort -n | md5sum
seq 1 8 | xargs -P4 -I{} sh -c 'sleep 0.0{}; echo job {}' | sort
printf '%s\0' a b 'c d' | xargs -0 -n1 echo | cat -A
seq 1 10 | xargs -P4 -n2 sh -c 'exit $(( $1 == 5 ? 3 : 0 ))' _ ; echo "xargs status: $?"

step grep -r
grep -r -l -i 'bash' /usr/share/doc/bash | sort
grep -r -c 'POSIX' /usr/share/doc/bash | sort
grep -rh -o -w 'readline' /usr/share/doc/bash | sort | uniq -c
grep -r -n -E '^Bash is' /usr/share/doc/bash | head -3
grep -r -q nonexistent-string-xyz /usr/share/doc/bash; echo "grep no match: $?"
zgrep -c 'bash' /usr/share/doc/bash/NEWS.gz

step awk
seq 1 100 | awk '{ s += $1; if ($1 % 7 == 0) c++ } END { printf "sum=%d sevens=%d avg=%.2f\n", s, c, s/NR }'
awk -F: '$3 == 0 { print $1, $6, $7 }' /etc/passwd
printf 'b 2\na 1\nb 3\n' | awk '{ t[$1] += $2 } END { for (k in t) print k, t[k] }' | sort
awk 'BEGIN { while (("echo x y z" | getline l) > 0) n = split(l, p, " "); print n, p[3]; system("exit 0") }'

step sed -i
printf 'alpha\nbeta\ngamma\n' > "$W/s.txt"
sed -i 's/beta/BETA/; /gamma/d; 1i\first' "$W/s.txt" && cat "$W/s.txt"
sed -i.bak -e '$a\last' "$W/s.txt" && cat "$W/s.txt" && wc -l < "$W/s.txt.bak"
ls "$W" | grep -c '^sed' || true
printf 'x=1\ny=2\n' | sed -n -E 's/^([a-z])=([0-9])$/\2:\1/p'

step perl
perl -e 'my %h = map { $_ => $_ ** 2 } 1..10; print join(",", map { "$_=$h{$_}" } sort { $a <=> $b } keys %h), "\n"'
perl -MDigest::MD5=md5_hex -e 'print md5_hex("rvisor"), "\n"'
perl -e 'pipe(R, W) or die; my $p = fork; if (!$p) { close R; print W "child $$ ok\n"; exit 3 } close W; my $l = <R>; waitpid($p, 0); $l =~ s/\d+/PID/; print $l, "status ", $? >> 8, "\n"'
perl -e '$SIG{ALRM} = sub { print "alarm\n"; exit 0 }; alarm 1; select(undef, undef, undef, 5); print "no alarm\n"; exit 1'
echo "perl -ne: $(printf 'x1\ny22\nz333\n' | perl -ne 'print if /\d{2}/' | tr '\n' ' ')"
perl -e 'opendir(my $d, "/usr/share/doc/bash") or die; my @f = sort grep { !/^\./ } readdir $d; print scalar(@f), " $f[0]\n"'
perl -e 'exit 6'; echo "perl status: $?"
echo end
"##;

#[test]
fn coreutils_text_tools_find_xargs_grep_awk_sed_perl() {
    let (_dir, path) = shell_script("text", TEXT_TOOLS);
    let (n, _) = compare_with(&["/bin/bash", &path], &mask_w);
    check_native(
        &n,
        0,
        &[
            "200000",
            "du -sb minus dir: 105000",
            "Thu Jan  1 00:00:00 UTC 1970",
            "2024-03-01",
            "year plausible",
            "./new1",
            "xargs status: 123",
            "grep no match: 1",
            "alarm",
            "perl status: 6",
            "end",
        ],
    );
}

/// `id`, and `env` through a filtered, stable subset: the names and values the test
/// sets itself, and the inherited HOME/LANG/PATH. The runs are started with the same
/// environment, so the inherited ones must come through unchanged. (The complete `env`
/// is not compared: it is whatever cargo's test harness happens to export, CARGO_* and
/// friends, which this test should not pin down.)
#[test]
fn coreutils_id_and_env() {
    let (n, _) = compare(&["id"]);
    check_native(&n, 0, &[]);
    for args in [
        &["id", "-u"][..],
        &["id", "-g"],
        &["id", "-un"],
        &["id", "-G"],
    ] {
        compare(args);
    }
    compare(&["whoami"]);
    let (n, _) = compare(&[
        "env",
        "-i",
        "FOO=bar",
        "BAZ=q u x",
        "EMPTY=",
        "PATH=/usr/bin:/bin",
        "env",
    ]);
    check_native(
        &n,
        0,
        &["FOO=bar", "BAZ=q u x", "EMPTY=", "PATH=/usr/bin:/bin"],
    );
    let filt = |s: &str| {
        let mut v: Vec<&str> = s
            .lines()
            .filter(|l| {
                ["RVISOR_E2E=", "HOME=", "LANG=", "PATH="]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect();
        v.sort();
        v.join("\n")
    };
    let (n, _) = compare_with(&["env", "RVISOR_E2E=1 2", "env"], &filt);
    check_native(&n, 0, &[]);
    assert!(n.stdout.contains("RVISOR_E2E=1 2"), "{}", n.describe());
    let (n, _) = compare(&[
        "env",
        "-u",
        "HOME",
        "/bin/sh",
        "-c",
        "echo \"HOME=${HOME-unset}\"",
    ]);
    check_native(&n, 0, &["HOME=unset"]);
}

const SQLITE3: &str = r##"
db="$W/t.db"
sqlite3 "$db" 'create table t(id integer primary key, v text);' \
  "with recursive c(x) as (select 1 union all select x+1 from c where x < 5000) insert into t(v) select 'row' || x from c;" \
  'select count(*), sum(id), max(v) from t;' \
  "select v from t where id in (1, 2500, 5000) order by id;"
sqlite3 "$db" 'pragma integrity_check;' 'pragma journal_mode=wal;' 'delete from t where id % 3 = 0;' 'select count(*) from t;'
sqlite3 -header -csv "$db" 'select id, v from t order by id desc limit 3;'
printf 'create table k(a);\ninsert into k values (1),(2),(3);\nselect group_concat(a) from k;\n' | sqlite3 -batch ':memory:'
sqlite3 "$db" 'select * from nonexistent;' 2>&1; echo "error status: $?"
echo end
"##;

#[test]
fn sqlite3_cli() {
    require("/usr/bin/sqlite3", "sqlite3");
    let (_dir, path) = shell_script("sqlite3", SQLITE3);
    let (n, _) = compare_with(&["/bin/bash", &path], &mask_w);
    check_native(
        &n,
        0,
        &["5000|12502500|row999", "ok", "wal", "3334", "1,2,3", "end"],
    );
}

// ---------------------------------------------------------------------------------
// python3 (always /usr/bin/python3: the Debian interpreter, not a pyenv shim)

const PYTHON3: &str = "/usr/bin/python3";

/// One script, sections chosen by its arguments.
const PY_SCRIPT: &str = r##"
import concurrent.futures, hashlib, json, multiprocessing, os, pty, select, selectors
import shutil, signal, socket, sqlite3, subprocess, sys, tempfile, threading, time

def step(name):
    print("==", name, flush=True)

def square(x):
    return x * x

def t_json():
    step("json")
    doc = {"name": "rvisor", "n": [1, 2.5, None, True], "nested": {"k": "v\u00e9"}}
    s = json.dumps(doc, sort_keys=True)
    print(s)
    print(json.loads(s) == doc, json.dumps(json.loads('{"b":1,"a":[]}'), indent=1, sort_keys=True))
    with tempfile.TemporaryDirectory(prefix="rvisor-py-", dir="/tmp") as d:
        p = os.path.join(d, "x.json")
        with open(p, "w") as f:
            json.dump({"k": list(range(1000))}, f)
        with open(p) as f:
            print(sum(json.load(f)["k"]))

def t_hashlib():
    step("hashlib")
    data = b"".join(i.to_bytes(4, "little") for i in range(100000))
    for algo in ("md5", "sha1", "sha256", "sha512", "blake2b", "sha3_256"):
        print(algo, hashlib.new(algo, data).hexdigest())
    print("pbkdf2", hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000).hex())
    print("urandom", len(os.urandom(64)), len(set(os.urandom(16) for _ in range(10))))

def t_sqlite3():
    step("sqlite3")
    with tempfile.TemporaryDirectory(prefix="rvisor-py-", dir="/tmp") as d:
        path = os.path.join(d, "t.db")
        con = sqlite3.connect(path)
        print(con.execute("pragma journal_mode=wal").fetchone())
        con.execute("create table t (id integer primary key, name text, v real)")
        con.executemany("insert into t (name, v) values (?, ?)",
                        ((f"name{i}", i * 0.5) for i in range(10000)))
        con.commit()
        print(con.execute("select count(*), sum(id), sum(v), max(name) from t").fetchone())
        con.execute("create index t_name on t(name)")
        print(con.execute("select id from t where name = 'name4242'").fetchone())
        con.execute("delete from t where id % 2 = 0")
        con.commit()
        con.close()
        con = sqlite3.connect(path)
        print(con.execute("select count(*) from t").fetchone(),
              con.execute("pragma integrity_check").fetchone())
        con.close()
        print("db size > 100k:", os.path.getsize(path) > 100000)

def t_threads():
    step("thread pool")
    lock = threading.Lock()
    counter = [0]
    def work(i):
        h = hashlib.sha256()
        for j in range(2000):
            h.update(f"{i}:{j}".encode())
            with lock:
                counter[0] += 1
        return i, h.hexdigest()[:16], threading.current_thread().name.startswith("rp")
    with concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rp") as ex:
        results = list(ex.map(work, range(16)))
    for r in results:
        print(*r)
    print("counter", counter[0], "threads now", threading.active_count())

def t_multiprocessing():
    step("multiprocessing")
    with multiprocessing.Pool(4) as pool:
        print(pool.map(square, range(20)))
        print(sum(pool.imap_unordered(square, range(1000), chunksize=50)))

def t_subprocess():
    step("subprocess")
    r = subprocess.run("seq 1 1000 | grep 7 | sort -r | head -3; exit 4", shell=True,
                       capture_output=True, text=True)
    print(repr(r.stdout), r.returncode)
    r = subprocess.run(["cat"], input=b"x" * 200000, capture_output=True)
    print(len(r.stdout), r.returncode)
    p1 = subprocess.Popen(["printf", "b\\na\\nc\\n"], stdout=subprocess.PIPE)
    p2 = subprocess.Popen(["sort"], stdin=p1.stdout, stdout=subprocess.PIPE)
    p1.stdout.close()
    print(p2.communicate()[0], p1.wait(), p2.returncode)
    try:
        subprocess.run(["sleep", "5"], timeout=0.2)
    except subprocess.TimeoutExpired:
        print("timeout expired")
    print(subprocess.run(["sh", "-c", "kill -9 $$"]).returncode)

def t_fork():
    step("fork/waitpid")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, str(os.getppid()).encode())
        os._exit(7)
    os.close(w)
    ppid = int(os.read(r, 100))
    os.close(r)
    wpid, status = os.waitpid(pid, 0)
    print(wpid == pid, ppid == os.getpid(), os.WIFEXITED(status), os.WEXITSTATUS(status))
    pid = os.fork()
    if pid == 0:
        time.sleep(10)
        os._exit(0)
    print(os.waitpid(pid, os.WNOHANG))
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print(os.WIFSIGNALED(status), os.WTERMSIG(status))
    try:
        os.waitpid(-1, 0)
    except ChildProcessError as e:
        print("ECHILD", e.errno)

def t_sockets():
    step("socketpair")
    a, b = socket.socketpair()
    a.sendall(b"ping" * 1000)
    got = b""
    while len(got) < 4000:
        got += b.recv(65536)
    print(len(got), got[:8])
    b.sendall(b"pong")
    a.shutdown(socket.SHUT_WR)
    print(a.recv(10), b.recv(10), a.family == socket.AF_UNIX)
    a.close(); b.close()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.send(b"d1"); a.send(b"d2")
    print(b.recv(10), b.recv(10))
    a.close(); b.close()

    step("AF_UNIX server/client")
    with tempfile.TemporaryDirectory(prefix="rvisor-py-", dir="/tmp") as d:
        addr = os.path.join(d, "sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(addr)
        srv.listen(4)
        def serve():
            for _ in range(3):
                c, _ = srv.accept()
                with c:
                    buf = b""
                    while not buf.endswith(b"\n"):
                        chunk = c.recv(100)
                        if not chunk:
                            break
                        buf += chunk
                    c.sendall(buf.upper())
        t = threading.Thread(target=serve)
        t.start()
        for i in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as cl:
                cl.connect(addr)
                cl.sendall(f"hello {i}\n".encode())
                print(cl.recv(100), cl.getpeername() == addr)
        t.join()
        srv.close()
        import stat
        print("socket file:", stat.S_ISSOCK(os.stat(addr).st_mode))
        try:
            socket.socket(socket.AF_UNIX).connect(addr)
        except ConnectionRefusedError as e:
            print("refused", e.errno)

def t_select():
    step("select/selectors")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    print(select.select([r1, r2], [w1], [], 0) == ([], [w1], []))
    os.write(w2, b"data")
    print(select.select([r1, r2], [], [], 1)[0] == [r2])
    sel = selectors.DefaultSelector()
    print(type(sel).__name__)
    sel.register(r1, selectors.EVENT_READ, "one")
    sel.register(r2, selectors.EVENT_READ, "two")
    print(sorted(k.data for k, _ in sel.select(1)))
    os.read(r2, 4)
    print(sel.select(0.05))
    def later():
        time.sleep(0.05)
        os.write(w1, b"x")
    threading.Thread(target=later).start()
    print([k.data for k, _ in sel.select(2)])
    sel.close()
    p = select.poll()
    p.register(r1, select.POLLIN)
    print(p.poll(100) == [(r1, select.POLLIN)])
    os.close(w1)
    os.read(r1, 1)
    print(p.poll(100) == [(r1, select.POLLHUP)])
    for fd in (r1, r2, w2):
        os.close(fd)

def t_signal():
    step("signal.alarm")
    fired = []
    signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    time.sleep(0.4)  # PEP 475: the handler runs, then the sleep resumes
    print("slept through, fired", fired, time.monotonic() - t0 >= 0.39)
    def boom(s, f):
        raise TimeoutError("alarm")
    signal.signal(signal.SIGALRM, boom)
    t0 = time.monotonic()
    signal.alarm(1)
    try:
        time.sleep(5)
        print("not interrupted")
    except TimeoutError as e:
        dt = time.monotonic() - t0
        print("interrupted by", e, "after about 1s:", 0.9 < dt < 2.5)
    print("alarm left", signal.alarm(0))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

def t_tempfile():
    step("tempfile/shutil")
    d = tempfile.mkdtemp(prefix="rvisor-py-")
    print(os.path.dirname(d), oct(os.stat(d).st_mode & 0o777))
    for i in range(5):
        sub = os.path.join(d, f"d{i}", "x", "y")
        os.makedirs(sub)
        with open(os.path.join(sub, "f"), "w") as f:
            f.write("z" * i * 1000)
    with tempfile.NamedTemporaryFile(dir=d, suffix=".txt", delete=False) as f:
        f.write(b"named")
    print(sorted(os.listdir(d))[:5], os.path.basename(f.name).endswith(".txt"))
    print(sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(d) for n in ns))
    shutil.copytree(d, d + ".copy")
    shutil.rmtree(d)
    print(os.path.exists(d), len(list(os.walk(d + ".copy"))))
    shutil.rmtree(d + ".copy")
    print(os.path.exists(d + ".copy"))
    with tempfile.TemporaryFile() as tf:
        tf.write(b"hello"); tf.seek(0); print(tf.read())

def t_pty():
    step("pty.spawn")
    # pty.spawn copies the child's terminal output to our stdout (stdin is /dev/null:
    # its EOF only stops the input side of the copy loop).
    st = pty.spawn(["sh", "-c", "tty >/dev/null && echo is-a-tty; echo line1; printf 'x\\ny\\n'; exit 3"])
    print("\nspawn status", os.waitstatus_to_exitcode(st))
    m, s = pty.openpty()
    print(os.isatty(s), os.ttyname(s).startswith("/dev/pts/"))
    os.write(m, b"abc\n")
    print(os.read(s, 100))
    os.close(m); os.close(s)

if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()["t_" + name]()
    print("done")
    sys.exit(3)
"##;

/// Runs the named sections of `PY_SCRIPT` natively and sandboxed; the script always
/// ends with "done" and exit status 3.
fn python(sections: &[&str], expect: &[&str]) {
    require(PYTHON3, "python3");
    let (_dir, path) = script("py", "script.py", PY_SCRIPT);
    let mut argv = vec![PYTHON3, "-u", path.as_str()];
    argv.extend_from_slice(sections);
    let (n, _) = compare(&argv);
    let mut markers = expect.to_vec();
    markers.push("done");
    check_native(&n, 3, &markers);
}

#[test]
fn python3_json_hashlib_sqlite3_tempfile() {
    python(
        &["json", "hashlib", "sqlite3", "tempfile"],
        &[
            "499500",
            "('wal',)",
            "(10000, 50005000, 24997500.0, 'name9999')",
            "(5000,) ('ok',)",
            "False 16",
        ],
    );
}

#[test]
fn python3_threads_multiprocessing_subprocess_fork() {
    python(
        &["threads", "multiprocessing", "subprocess", "fork"],
        &[
            "counter 32000 threads now 1",
            "332833500",
            "'997\\n987\\n979\\n' 4",
            "timeout expired",
            "-9",
            "True True True 7",
            "True 15",
            "ECHILD 10",
        ],
    );
}

#[test]
fn python3_sockets_and_select() {
    python(
        &["sockets", "select"],
        &[
            "4000 b'pingping'",
            "socket file: True",
            "EpollSelector",
            "['one']",
        ],
    );
}

#[test]
fn python3_signal_alarm_interrupts_sleep() {
    python(
        &["signal"],
        &[
            "slept through, fired [14] True",
            "interrupted by alarm after about 1s: True",
            "alarm left 0",
        ],
    );
}

/// pty.spawn and pty.openpty need /dev/ptmx and devpts inside the sandbox.
#[test]
fn python3_pty_spawn() {
    python(&["pty"], &["spawn status 3", "True True"]);
}

// ---------------------------------------------------------------------------------
// gcc

const UTIL_H: &str = r##"#ifndef UTIL_H
#define UTIL_H
#include <stddef.h>
#include <stdint.h>
uint64_t fnv1a(const void *data, size_t len);
long collatz_steps(long n);
void sort_longs(long *v, size_t n);
double matrix_trace(void);
extern int util_calls;
#endif
"##;

const UTIL_C: &str = r##"#include <stdlib.h>
#include "util.h"
int util_calls;
uint64_t fnv1a(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    util_calls++;
    for (size_t i = 0; i < len; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}
long collatz_steps(long n) {
    long s = 0;
    util_calls++;
    while (n != 1) { n = (n & 1) ? 3 * n + 1 : n / 2; s++; }
    return s;
}
static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}
void sort_longs(long *v, size_t n) { util_calls++; qsort(v, n, sizeof *v, cmp); }
"##;

const MATRIX_C: &str = r##"#include <math.h>
#include <string.h>
#include "util.h"
#define N 64
static double a[N][N], b[N][N], c[N][N];
double matrix_trace(void) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) { a[i][j] = i + j; b[i][j] = (i == j) ? 2.0 : 0.5; }
    memset(c, 0, sizeof c);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < N; k++)
            for (int j = 0; j < N; j++) c[i][j] += a[i][k] * b[k][j];
    double t = 0;
    for (int i = 0; i < N; i++) t += c[i][i];
    return sqrt(t * t);
}
"##;

const MAIN_C: &str = r##"#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "util.h"
int main(int argc, char **argv) {
    long best = 0, arg = 0, v[10] = {9, -3, 7, 0, 42, 5, -8, 1, 6, 3};
    for (long n = 1; n < 100000; n++) {
        long s = collatz_steps(n);
        if (s > best) { best = s; arg = n; }
    }
    printf("collatz: %ld takes %ld steps\n", arg, best);
    const char *msg = "rvisor gcc e2e";
    printf("fnv1a: %016llx\n", (unsigned long long)fnv1a(msg, strlen(msg)));
    sort_longs(v, 10);
    for (int i = 0; i < 10; i++) printf("%ld%c", v[i], i == 9 ? '\n' : ' ');
    printf("trace: %.1f\n", matrix_trace());
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) _exit(argc + 10);
    int st;
    waitpid(p, &st, 0);
    printf("child status: %d, util calls: %d, argv[1]: %s\n", WEXITSTATUS(st), util_calls,
           argc > 1 ? argv[1] : "-");
    return 3;
}
"##;

/// Compiles (each file separately, then one gcc call for all three), links and runs,
/// all inside; the objects and binaries go to a private mktemp dir.
const GCC_BUILD: &str = r##"set -u
SRC=$1
O=$(mktemp -d /tmp/rvisor-gcc.XXXXXX) || exit 90
trap 'rm -rf "$O"' EXIT
cd "$SRC" || exit 91
for f in main util matrix; do gcc -O2 -Wall -Werror -c -o "$O/$f.o" "$f.c" || exit 92; done
gcc -O2 -o "$O/prog" "$O/main.o" "$O/util.o" "$O/matrix.o" -lm || exit 93
echo "linked: $(test -x "$O/prog" && echo yes)"
"$O/prog" hello; echo "prog status: $?"
gcc -O2 -Wall -o "$O/prog2" main.c util.c matrix.c -lm || exit 94
"$O/prog2" | md5sum
echo "exit of prog2: ${PIPESTATUS[0]}"
nm "$O/util.o" | awk '{print $NF}' | sort | tr '\n' ' '; echo
printf 'int main(void){return 0;}\n' | gcc -O2 -x c -o "$O/empty" - && "$O/empty" && echo "stdin compile ok"
printf 'int main(void){return x;}\n' | gcc -x c -o "$O/bad" - 2>/dev/null; echo "bad compile status: $?"
echo end
"##;

#[test]
fn gcc_compiles_links_and_runs_three_file_program() {
    require("/usr/bin/gcc", "gcc");
    let dir = TempDir::new("gcc");
    for (name, body) in [
        ("util.h", UTIL_H),
        ("util.c", UTIL_C),
        ("matrix.c", MATRIX_C),
        ("main.c", MAIN_C),
        ("build.sh", GCC_BUILD),
    ] {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let build = dir.join("build.sh").to_string_lossy().into_owned();
    let src = dir.path().to_string_lossy().into_owned();
    let (n, _) = compare(&["/bin/bash", &build, &src]);
    check_native(
        &n,
        0,
        &[
            "linked: yes",
            "collatz: 77031 takes 350 steps",
            "-8 -3 0 1 3 5 6 7 9 42",
            "child status: 12, util calls: 100001, argv[1]: hello",
            "prog status: 3",
            "exit of prog2: 3",
            "stdin compile ok",
            "bad compile status: 1",
            "end",
        ],
    );
}

#[test]
fn mask_mktemp_masks_only_full_suffixes() {
    assert_eq!(
        mask_mktemp(
            "a /tmp/rvisor-rp.Ab3dE9/x /tmp/rvisor-rp.ab b",
            "/tmp/rvisor-rp."
        ),
        "a /tmp/rvisor-rp.XXXXXX/x /tmp/rvisor-rp.ab b"
    );
}

kvm_tests!(
    bash_script,
    coreutils_cp_a_diff_r_and_tar,
    coreutils_text_tools_find_xargs_grep_awk_sed_perl,
    coreutils_id_and_env,
    sqlite3_cli,
    python3_json_hashlib_sqlite3_tempfile,
    python3_threads_multiprocessing_subprocess_fork,
    python3_sockets_and_select,
    python3_signal_alarm_interrupts_sleep,
    python3_pty_spawn,
    gcc_compiles_links_and_runs_three_file_program,
);
