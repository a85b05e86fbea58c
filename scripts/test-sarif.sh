#!/usr/bin/env bash
# boo's SARIF checked by the SARIF authors' own validator (npm @microsoft/sarif-multitool,
# `validate`, with the SARIF 2.1.0 rules and GitHub code scanning's ingestion rules):
#   (1) the log `boo run … --sarif FILE` writes for a real run (the scripted fake qwen),
#       and `boo export <runId> --format sarif` of the same run;
#   (2) tests/snapshots/sarif-sample.sarif, which holds a verified and an unverified
#       result (the Rust unit test keeps it byte-equal to what boo renders).
# Any error or warning the validator reports fails the suite, with one exception:
# SARIF2005 (tool properties) asks for `tool.driver.informationUri`, and boo has no
# public home to name yet — an invented URL would be worse than none. The driver's name,
# version and semanticVersion (the rest of that rule) are checked by the Rust tests.
# Last line "N passed, M failed".
#
#   scripts/test-sarif.sh          # uses ${BOO_BIN:-target/debug/boo}
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASS=0; FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1"; }
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]; exit $?; }

scripts/install-sarif.sh >/dev/null || { notok "install @microsoft/sarif-multitool"; finish; }
# The package's launcher runs the tool through a shell; call the tool itself.
TOOL="$(cd .tools/sarif-multitool && node -p "require('@microsoft/sarif-multitool')")"
[ -x "$TOOL" ] || { notok "sarif-multitool binary at $TOOL"; finish; }
BOO_BIN="${BOO_BIN:-target/debug/boo}"
case "$BOO_BIN" in /*) ;; *) BOO_BIN="$ROOT/$BOO_BIN" ;; esac
[ -x "$BOO_BIN" ] || { notok "no server binary at $BOO_BIN (cargo build)"; finish; }

WORK="$(mktemp -d /tmp/boo-sarif-test.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ART="$ROOT/artifacts/sarif"
mkdir -p "$ART"

# Validates one log; every result of level warning or error (or none given) fails it.
validate() { # name file
  local name="$1" file="$2" out="$WORK/$1.validation.sarif"
  if ! timeout 300 "$TOOL" validate "$file" --output "$out" --log ForceOverwrite --rule-kind "Sarif;Gh" >"$WORK/$name.log" 2>&1; then
    cat "$WORK/$name.log"; notok "$name: the validator did not run to the end"; return
  fi
  cp "$out" "$ART/$name.validation.sarif"
  local problems
  problems="$(python3 - "$out" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
bad = 0
for run in log.get("runs", []):
    for r in run.get("results", []):
        level = r.get("level", "warning")
        if r.get("ruleId") == "SARIF2005":
            continue  # informationUri: see the note at the top
        if level in ("warning", "error"):
            bad += 1
            msg = r.get("message", {})
            print("   %s %s %s" % (level, r.get("ruleId"), msg.get("text") or msg.get("arguments")))
    for n in run.get("invocations", [{}])[0].get("toolExecutionNotifications", []) or []:
        if n.get("level", "warning") == "error":
            bad += 1
            print("   tool error:", n.get("message", {}).get("text"))
print("BAD", bad)
PY
)"
  echo "$problems" | grep -v '^BAD'
  if echo "$problems" | grep -qx 'BAD 0'; then ok "$name: valid SARIF 2.1.0, no GitHub ingestion problem"; else notok "$name: the validator reported problems"; fi
}

# (1) a real run.
PROJECT="$WORK/project"
mkdir -p "$PROJECT/src"
printf '# Demo project\n\nA tiny project.\n' > "$PROJECT/README.md"
printf 'pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n' > "$PROJECT/src/lib.rs"
git -C "$PROJECT" init -q -b main
git -C "$PROJECT" -c user.email=t@example.com -c user.name=t add -A
git -C "$PROJECT" -c user.email=t@example.com -c user.name=t commit -q -m init
export BOO_DB="$WORK/boo.db" XDG_DATA_HOME="$WORK/data" BOO_QWEN="$ROOT/tests/fixtures/fake-qwen"
export OPENAI_BASE_URL=http://127.0.0.1:9/v1 OPENAI_API_KEY=test-key OPENAI_MODEL=test-model
unset FAKE_QWEN_MODE FAKE_QWEN_MODES OTEL_EXPORTER_OTLP_ENDPOINT
if timeout 300 "$BOO_BIN" run code-review --root "$PROJECT" --sarif "$WORK/run.sarif" "Is add safe?" >"$WORK/report.md" 2>"$WORK/run.log"; then
  ok "boo run --sarif wrote a log"
  cp "$WORK/run.sarif" "$ART/run.sarif"
  validate run "$WORK/run.sarif"
  run_id="$(sed -n 's/^- Run: `\(.*\)`$/\1/p' "$WORK/report.md")"
  if "$BOO_BIN" export "$run_id" --format sarif > "$WORK/export.sarif" && cmp -s "$WORK/export.sarif" "$WORK/run.sarif"; then
    ok "boo export --format sarif gives the same log"
  else
    notok "boo export --format sarif differs from the --sarif file"
  fi
else
  tail -20 "$WORK/run.log"; notok "boo run --sarif"
fi

# (2) the sample with an unverified result.
validate sample tests/snapshots/sarif-sample.sarif
if python3 -c "
import json,sys; r=json.load(open('tests/snapshots/sarif-sample.sarif'))['runs'][0]['results']
sys.exit(0 if {x['properties']['verdict'] for x in r} == {'verified','unverified'} else 1)"; then
  ok "the sample holds a verified and an unverified result"
else
  notok "the sample must hold a verified and an unverified result"
fi
finish
