#!/usr/bin/env bash
# A generic LSP client no one here wrote: Emacs with eglot from Debian's packages
# (emacs-nox, elpa-eglot; scripts/install-emacs.sh) starts `boo serve` with the
# documented configuration (docs/editors/boo-eglot.el), runs boo.launchFlow through
# workspace/executeCommand, sees the $/progress end and the finding as a diagnostic.
#
#   scripts/test-emacs.sh          # uses ${BOO_BIN:-target/debug/boo}; last line "N passed, M failed"
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EMACS="$(scripts/install-emacs.sh | tail -n 1)" || { echo "cannot install Emacs with eglot"; echo "0 passed, 1 failed"; exit 1; }
BOO_BIN="${BOO_BIN:-target/debug/boo}"
case "$BOO_BIN" in /*) ;; *) BOO_BIN="$ROOT/$BOO_BIN" ;; esac
[ -x "$BOO_BIN" ] || { echo "no server binary at $BOO_BIN (cargo build)"; echo "0 passed, 1 failed"; exit 1; }

WORK="$(mktemp -d /tmp/boo-emacs-test.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
PROJECT="$WORK/project"
mkdir -p "$PROJECT" "$WORK/home"
printf '# Cache service\n\nA tiny service with an in-memory cache.\n' > "$PROJECT/README.md"
printf 'CACHE = {}\n' > "$PROJECT/cache.py"
git -C "$PROJECT" init -q -b main
git -C "$PROJECT" -c user.email=t@example.com -c user.name=t add -A
git -C "$PROJECT" -c user.email=t@example.com -c user.name=t commit -q -m init
cp tests/fixtures/fake-qwen "$WORK/fake-qwen" && chmod +x "$WORK/fake-qwen"

# Own session and process group: whatever the test leaves is killed with the group.
setsid env HOME="$WORK/home" BOO_BIN="$BOO_BIN" BOO_TEST_PROJECT="$PROJECT" BOO_DB="$WORK/boo.db" \
  BOO_QWEN="$WORK/fake-qwen" FAKE_QWEN_DELAY_MS=20 XDG_DATA_HOME="$WORK/data" \
  OPENAI_BASE_URL=http://127.0.0.1:9/v1 OPENAI_API_KEY=test-key OPENAI_MODEL=test-model \
  timeout --kill-after=5 300 "$EMACS" --batch -Q -l tests/emacs/eglot-test.el > "$WORK/out" 2>"$WORK/err" &
pid=$!
wait "$pid"
rc=$?
kill -KILL -- "-$pid" 2>/dev/null || true
cat "$WORK/out"
mkdir -p artifacts/emacs
cp "$WORK/err" artifacts/emacs/eglot-stderr.log
left=$(for e in /proc/[0-9]*/environ; do grep -qz "BOO_DB=$WORK/boo.db" "$e" 2>/dev/null && echo "${e//[^0-9]/}"; done)
if [ -n "$left" ]; then
  echo "FAIL eglot: processes left running after the test: $left"; kill -KILL $left 2>/dev/null
  echo "0 passed, 1 failed"; exit 1
fi
if ! grep -q ' passed, ' "$WORK/out"; then
  echo "FAIL eglot: emacs exited $rc before the end; stderr:"; tail -30 "$WORK/err" | cut -c1-400; echo "0 passed, 1 failed"; exit 1
fi
[ "$rc" = 0 ]
