#!/usr/bin/env bash
# Installs the SARIF authors' validator, npm @microsoft/sarif-multitool (pinned), under
# .tools/sarif-multitool (a second run is a fast no-op). Prints the executable.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="5.7.0"
DIR="$ROOT/.tools/sarif-multitool"
BIN="$DIR/node_modules/.bin/sarif-multitool"
if [ "$(cat "$DIR/.stamp" 2>/dev/null)" != "$VERSION" ] || [ ! -x "$BIN" ]; then
  echo "install-sarif: npm install @microsoft/sarif-multitool@$VERSION" >&2
  rm -rf "$DIR"; mkdir -p "$DIR"
  (cd "$DIR" && echo '{"name":"boo-sarif-multitool","private":true}' > package.json &&
    npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error "@microsoft/sarif-multitool@$VERSION" >&2)
  "$BIN" --version >/dev/null 2>&1 || "$BIN" --help >/dev/null 2>&1 || { echo "install-sarif: $BIN does not run" >&2; exit 1; }
  echo "$VERSION" > "$DIR/.stamp"
fi
echo "$BIN"
