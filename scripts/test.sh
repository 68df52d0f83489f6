#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then formatting, unit and
# end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v busybox >/dev/null || need+=(busybox-static)
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
# CPython's regression tests, which runsc-cli/tests/python_suite.rs runs.
[ -e /usr/lib/python3.11/test/test_os.py ] || need+=(libpython3.11-testsuite)
# The end-to-end tests run these inside the sandbox and natively (docker.io is
# installed by the docker tests themselves).
for p in python3:python3 sqlite3:sqlite3 perl:perl curl:curl ip:iproute2 ss:iproute2 \
         ifconfig:net-tools netstat:net-tools tar:tar gzip:gzip diff:diffutils \
         find:findutils awk:mawk nm:binutils ping:iputils-ping; do
  command -v "${p%%:*}" >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v "${p%%:*}" >/dev/null \
    || need+=("${p##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --release --workspace
# Tests that cannot run here (no usable /dev/kvm, no docker) print "SKIPPED: reason";
# those lines are gathered for the summary at the end.
log=target/test-output.log
mkdir -p target
cargo test --release -p platform -p gofer -p netstack -p sentry -p rvisor-bench -p runsc-cli -p syscall-tests -- --test-threads=1 2>&1 | tee "$log"
# The Linux ABI conformance suite: every case natively first, then under each platform.
cargo run --release -p syscall-tests
echo "== skipped tests (end-to-end and docker; the conformance suite lists its own above)"
grep -o "SKIPPED: .*" "$log" | sort | uniq -c || echo "none"
