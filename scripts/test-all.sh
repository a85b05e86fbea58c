#!/usr/bin/env bash
# Installs what the tests need (cached under .tools/, so the second run is fast) and
# runs EVERY test suite: Rust unit and end-to-end tests (fake qwen and the real qwen
# CLI against a scripted model server, on both agent transports), the fixtures' self
# test, the catalog check, the Neovim plugin tests (also installed as lazy.nvim and
# vim.lsp.enable would), the VS Code extension tests (also the platform .vsix alone),
# Emacs with eglot as a generic LSP client, SARIF validation, and flow files checked
# by taplo.
#
#   scripts/test-all.sh
#
# Prints one line per suite and ends with "N passed, M failed"; exits non-zero when
# any suite failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR=never
# boo refuses to run agents without a configured model endpoint. The editor suites
# use the scripted fake qwen, which never contacts it; the real-qwen tests start
# their own scripted model server and set these themselves.
export OPENAI_BASE_URL="${OPENAI_BASE_URL:-http://127.0.0.1:9/v1}"
export OPENAI_API_KEY="${OPENAI_API_KEY:-test-key}"
export OPENAI_MODEL="${OPENAI_MODEL:-test-model}"

pass=0
fail=0
summary=()
suite() {
  local name="$1"
  shift
  echo
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    pass=$((pass + 1))
    summary+=("ok    $name ($((SECONDS - t0)) s)")
  else
    fail=$((fail + 1))
    summary+=("FAIL  $name ($((SECONDS - t0)) s)")
  fi
}

suite "install: Node 22 + qwen-code 0.24.4 (cached)" scripts/install-qwen.sh
suite "rust: formatting" cargo fmt --all -- --check
suite "rust: clippy" cargo clippy --all-targets --quiet -- -D warnings
suite "rust: build" cargo build --quiet
export BOO_REQUIRE_REAL_QWEN=1
suite "rust: unit, end-to-end and real-qwen tests (agents in the warm ACP pool)" cargo test --quiet
# The same end-to-end tests with one `qwen -p` per prompt (BOO_AGENT_TRANSPORT=oneshot).
suite "rust: end-to-end and real-qwen tests on the one-shot transport" \
  env BOO_AGENT_TRANSPORT=oneshot cargo test --quiet --test serve --test cli --test workflows --test agents --test spawn --test attachments --test real_qwen
suite "fixtures: fake qwen and mock model server" python3 tests/fixtures/selftest.py
suite "catalog: flows and personas" python3 scripts/check-catalog.py
suite "neovim plugin (headless Neovim 0.11.4)" scripts/test-nvim.sh
suite "vs code extension (reducer, webviews, code-server)" scripts/test-vscode.sh
suite "vs code: the platform .vsix (release build inside) alone in code-server" scripts/test-vscode.sh bundled
suite "neovim: installed as lazy.nvim and vim.lsp.enable would (a clone, its release build)" scripts/test-nvim-install.sh
suite "emacs + eglot from Debian (a generic LSP client)" scripts/test-emacs.sh
suite "sarif: validated by @microsoft/sarif-multitool" scripts/test-sarif.sh
suite "flow files: taplo checks them through their #:schema directive" scripts/test-flow-schema.sh
suite "boo setup: the real qwen and Node tarballs from a stand-in npm registry" scripts/test-setup.sh

echo
echo "=== summary"
for line in "${summary[@]}"; do
  echo "$line"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
