#!/usr/bin/env bash
# Headless Neovim tests of the boo plugin (editors/nvim) against the REAL
# server (`boo serve`) and the scripted fake qwen.
#
#   scripts/test-nvim.sh                 # every tests/nvim/*_spec.lua
#   scripts/test-nvim.sh state launch    # only state_spec.lua and launch_spec.lua
#   BOO_NVIM_SPEC_DIR=tests/nvim-install scripts/test-nvim.sh   # specs of another folder
#
# Uses ${BOO_BIN:-target/debug/boo} (builds nothing). Each spec runs as
#   timeout 120 nvim --headless -u NONE -i NONE -n -l <spec>
# in its own session with private XDG dirs; the spec stops its LSP clients,
# then this script kills anything left over (found by a per-spec token in the
# process environment) by process group, and reports it as a failure.
# Prints one line per test and a final "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NVIM="$("$ROOT/scripts/install-nvim.sh" | tail -n 1)" || { echo "test-nvim: cannot install Neovim" >&2; exit 2; }

# boo refuses to run agents without a configured endpoint; the fake qwen never calls it.
export OPENAI_BASE_URL="${OPENAI_BASE_URL:-http://127.0.0.1:9/v1}"
export OPENAI_API_KEY="${OPENAI_API_KEY:-test-key}"
export OPENAI_MODEL="${OPENAI_MODEL:-test-model}"

BOO_BIN="${BOO_BIN:-target/debug/boo}"
case "$BOO_BIN" in /*) ;; *) BOO_BIN="$ROOT/$BOO_BIN" ;; esac
if [ ! -x "$BOO_BIN" ]; then
  echo "test-nvim: no server binary at $BOO_BIN — build it first (cargo build) or set BOO_BIN=/path/to/boo" >&2
  exit 2
fi
FAKE_QWEN="${BOO_FAKE_QWEN:-$ROOT/tests/fixtures/fake-qwen}"
if [ ! -x "$FAKE_QWEN" ]; then
  echo "test-nvim: no fake qwen at $FAKE_QWEN (tests/fixtures/fake-qwen)" >&2
  exit 2
fi
SPEC_TIMEOUT="${SPEC_TIMEOUT:-120}"

SPEC_DIR="${BOO_NVIM_SPEC_DIR:-tests/nvim}"
specs=()
if [ "$#" -gt 0 ]; then
  for name in "$@"; do
    name="${name%.lua}"; name="${name%_spec}"; name="${name##*/}"
    specs+=("$SPEC_DIR/${name}_spec.lua")
  done
else
  for f in "$SPEC_DIR"/*_spec.lua; do specs+=("$f"); done
fi

mkdir -p "$ROOT/artifacts/nvim"
WORK="$(mktemp -d /tmp/boo-nvim-test.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# A private copy of the fake qwen: the file in the checkout may be rewritten
# while a run is in flight.
cp "$FAKE_QWEN" "$WORK/fake-qwen"
chmod +x "$WORK/fake-qwen"
FAKE_QWEN="$WORK/fake-qwen"

# Pids that belong to a spec: the environment holds its token (descendants,
# even those that started their own session, e.g. LSP servers), or the
# working directory is inside its private temp dir (agents run in the temp
# project, whatever environment the server gives them).
token_pids() {
  local token="$1" dir="$2" env pid cwd
  for env in /proc/[0-9]*/environ; do
    pid="${env#/proc/}"; pid="${pid%/environ}"
    [ "$pid" = "$$" ] && continue
    if grep -qzx "BOO_NVIM_TEST_TOKEN=$token" "$env" 2>/dev/null; then
      echo "$pid"
      continue
    fi
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || continue
    case "$cwd" in "$dir"|"$dir"/*) echo "$pid" ;; esac
  done
}

passed=0
failed=0
for spec in "${specs[@]}"; do
  name="$(basename "$spec" .lua)"
  if [ ! -f "$spec" ]; then
    echo "FAIL $name: no such spec file $spec"
    failed=$((failed + 1))
    continue
  fi
  # Fresh artifacts for this spec (others' stay).
  rm -f "$ROOT/artifacts/nvim/$name"-*.txt "$ROOT/artifacts/nvim/$name.log"
  token="$(date +%s%N)-$RANDOM"
  home="$WORK/$name"
  mkdir -p "$home/config" "$home/data" "$home/state" "$home/cache" "$home/tmp"
  out="$WORK/$name.out"
  results="$WORK/$name.results"
  : > "$results"
  start=$(date +%s%N)
  # setsid: own session and process group (timeout keeps it as the group).
  env BOO_NVIM_TEST_TOKEN="$token" BOO_NVIM_RESULTS="$results" BOO_BIN="$BOO_BIN" BOO_FAKE_QWEN="$FAKE_QWEN" \
    XDG_CONFIG_HOME="$home/config" XDG_DATA_HOME="$home/data" XDG_STATE_HOME="$home/state" \
    XDG_CACHE_HOME="$home/cache" TMPDIR="$home/tmp" \
    setsid timeout --kill-after=5 "$SPEC_TIMEOUT" \
      "$NVIM" --headless -u NONE -i NONE -n -l "$spec" >"$out" 2>&1 </dev/null &
  pid=$!
  wait "$pid"
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  kill -KILL -- "-$pid" 2>/dev/null || true

  # Give stopped servers a moment to exit, then kill what is left.
  left=""
  for _ in $(seq 1 30); do
    left="$(token_pids "$token" "$home")"
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$left" ]; then
    desc="$(for p in $left; do printf '%s(%s) ' "$p" "$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | cut -c1-80)"; done)"
    for p in $left; do
      pg="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')"
      [ -n "$pg" ] && [ "$pg" != "0" ] && kill -TERM -- "-$pg" 2>/dev/null
      kill -TERM "$p" 2>/dev/null
    done
    sleep 0.5
    for p in $(token_pids "$token" "$home"); do
      pg="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')"
      [ -n "$pg" ] && [ "$pg" != "0" ] && kill -KILL -- "-$pg" 2>/dev/null
      kill -KILL "$p" 2>/dev/null
    done
  fi

  # Per-test lines from the spec.
  grep -v "^RESULT " "$results"
  p=$(grep -c '^PASS ' "$results")
  f=$(grep -c '^FAIL ' "$results")
  passed=$((passed + p))
  failed=$((failed + f))
  if ! grep -q '^RESULT ' "$results"; then
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
      echo "FAIL $name: timed out after ${SPEC_TIMEOUT}s"
    else
      echo "FAIL $name: crashed (exit $rc) before finishing"
    fi
    echo "---- $name output (last 40 lines) ----"
    tail -n 40 "$out"
    echo "----"
    failed=$((failed + 1))
  elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    echo "FAIL $name: exited $rc"
    tail -n 20 "$out"
    failed=$((failed + 1))
  fi
  if [ -n "$left" ]; then
    echo "FAIL $name: processes left running after the spec (killed): $desc"
    failed=$((failed + 1))
  fi
  cp "$out" "$ROOT/artifacts/nvim/$name.log"
  echo "  ($name: ${ms} ms)"
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
