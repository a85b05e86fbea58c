#!/usr/bin/env bash
# Tests of the VS Code extension (editors/vscode):
#   (a) typecheck + unit tests of the pane reducer, run store, chat handler (node --test)
#   (b) the pane, launcher and traces webviews in headless Chromium, fed with recorded
#       notification sequences of the real server (tests/vscode/webviews.test.mjs)
#   (c) end to end in code-server 4.139.1 with the packaged .vsix against the real boo
#       binary and the fake qwen (tests/vscode/e2e.test.mjs; images and background
#       agents: tests/vscode/e2e-images-agents.test.mjs)
#   (d) the platform .vsix that carries a release build of boo (scripts/package-vsix.sh),
#       alone in code-server with no boo on PATH (tests/vscode/bundled.test.mjs)
# Screenshots and logs: artifacts/vscode/. Last line: "N passed, M failed".
#
#   scripts/test-vscode.sh            # everything
#   BOO_BIN=/path/to/boo scripts/test-vscode.sh
#   scripts/test-vscode.sh unit webviews   # a subset: unit | webviews | e2e | bundled (bundled: not in the default)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXT="$ROOT/editors/vscode"
ART="$ROOT/artifacts/vscode"
export BOO_BIN="${BOO_BIN:-target/debug/boo}"
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(unit webviews e2e)
want() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

PASS=0
FAIL=0
log() { printf '\n=== %s\n' "$*"; }
# Adds the "# pass N" / "# fail M" totals of a TAP file.
count_tap() { # file
  local p f
  p=$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')
  if [ -z "$p" ] && [ -z "$f" ]; then FAIL=$((FAIL + 1)); echo "(no test results in $1: counted as one failure)"; return; fi
  PASS=$((PASS + ${p:-0})); FAIL=$((FAIL + ${f:-0}))
}
check() { # name, command...
  local name="$1"; shift
  if "$@"; then PASS=$((PASS + 1)); echo "ok - $name"; else FAIL=$((FAIL + 1)); echo "not ok - $name"; fi
}
# node --test with a spec report on the terminal and TAP in a file, under a hard timeout.
run_node_tests() { # seconds, tapfile, files...
  local secs="$1" tap="$2"; shift 2
  timeout -k 10 "$secs" node --test --test-timeout=$((secs * 1000)) \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" "$@"
  local rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "# fail 1 (timeout after ${secs}s)" >> "$tap"
  count_tap "$tap"
}

log "install (cached)"
if ! scripts/install-vscode.sh; then
  echo "install failed"
  echo "0 passed, 1 failed"
  exit 1
fi
mkdir -p "$ART"
rm -f "$ART"/*.png "$ART"/*.tap "$ART"/*.log "$ART"/*.json "$ART"/*.txt

log "build"
check "typecheck (tsc --noEmit)" bash -c "cd '$EXT' && npx --no-install tsc --noEmit -p ."
check "bundle (esbuild: extension, webviews, tests)" bash -c "cd '$EXT' && node esbuild.mjs --tests"
# The workflow API's declarations as an editor sees them: `boo workflow init` writes a
# starter, boo-workflow.d.ts and jsconfig.json; TypeScript checks the starter against
# the declarations (--checkJs). The only error allowed is TS1108, the top-level
# `return` that boo's script body allows and plain JavaScript does not.
check "workflow init: the starter type-checks against boo-workflow.d.ts" bash -c "
  d=\$(mktemp -d) && trap 'rm -rf \"\$d\"' EXIT &&
  '$BOO_BIN' workflow init starter --dir \"\$d/wf\" >/dev/null 2>&1 &&
  cd '$EXT' && out=\$(npx --no-install tsc --noEmit -p \"\$d/wf/jsconfig.json\" --checkJs 2>&1);
  echo \"\$out\" | grep -q 'error TS1108' && ! echo \"\$out\" | grep 'error TS' | grep -v TS1108"

if want unit; then
  log "(a) unit tests: reducer, run store, chat handler, server path"
  run_node_tests 120 "$ART/unit.tap" "$EXT"/out/test/*.test.js
fi

if want webviews; then
  log "(b) webviews in headless Chromium"
  run_node_tests 600 "$ART/webviews.tap" tests/vscode/webviews.test.mjs
fi

if want e2e; then
  log "(c) end to end in code-server with the real boo ($BOO_BIN)"
  if [ ! -x "$BOO_BIN" ]; then
    echo "not ok - boo binary $BOO_BIN is missing (cargo build)"
    FAIL=$((FAIL + 1))
  else
    check "package the .vsix (vsce)" bash -c "cd '$EXT' && npm run --silent package >'$ART/vsce.log' 2>&1"
    export BOO_E2E_PGID_FILE="$ART/e2e-code-server.pgid"
    rm -f "$BOO_E2E_PGID_FILE"
    run_node_tests 900 "$ART/e2e.tap" tests/vscode/e2e.test.mjs
    # Images and background agents: a second code-server, after the first has stopped.
    run_node_tests 600 "$ART/e2e-images-agents.tap" tests/vscode/e2e-images-agents.test.mjs
    # If the test process died early, its code-server group may still be there.
    if [ -f "$BOO_E2E_PGID_FILE" ]; then
      pg=$(cat "$BOO_E2E_PGID_FILE")
      if kill -0 -- "-$pg" 2>/dev/null; then
        echo "not ok - code-server process group $pg was still alive after the test (killed)"
        kill -KILL -- "-$pg" 2>/dev/null
        FAIL=$((FAIL + 1))
      fi
      rm -f "$BOO_E2E_PGID_FILE"
    fi
  fi
fi

if want bundled; then
  log "(d) the platform .vsix (server inside) in code-server, no boo on PATH"
  VSIX_PLATFORM="$ART/boo-vscode-platform.vsix"
  rm -f "$VSIX_PLATFORM"
  if check "package the platform .vsix from a release build (scripts/package-vsix.sh)" \
      bash -c "scripts/package-vsix.sh --out '$VSIX_PLATFORM' >'$ART/package-vsix.log' 2>&1"; then
    echo "# platform .vsix: $(du -k "$VSIX_PLATFORM" | cut -f1) KiB ($(unzip -l "$VSIX_PLATFORM" | tail -1 | awk '{print $1}') bytes unpacked)"
    export BOO_E2E_PGID_FILE="$ART/bundled-code-server.pgid"
    rm -f "$BOO_E2E_PGID_FILE"
    BOO_VSIX_PLATFORM="$VSIX_PLATFORM" run_node_tests 600 "$ART/bundled.tap" tests/vscode/bundled.test.mjs
    if [ -f "$BOO_E2E_PGID_FILE" ]; then
      pg=$(cat "$BOO_E2E_PGID_FILE")
      if kill -0 -- "-$pg" 2>/dev/null; then
        echo "not ok - code-server process group $pg was still alive after the test (killed)"
        kill -KILL -- "-$pg" 2>/dev/null
        FAIL=$((FAIL + 1))
      fi
      rm -f "$BOO_E2E_PGID_FILE"
    fi
  else
    tail -20 "$ART/package-vsix.log"
  fi
fi

echo
echo "screenshots and logs: ${ART#$ROOT/}/"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
