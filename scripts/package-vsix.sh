#!/usr/bin/env bash
# Builds the platform-specific VS Code extension package that carries the boo server:
# a release build of boo, stripped, inside editors/vscode/server/boo, packaged with
# `vsce package --target <platform>`. The extension runs that binary unless the
# `boo.serverPath` setting names another one.
#
#   scripts/package-vsix.sh                # → editors/vscode/out/boo-vscode-<platform>-<version>.vsix
#   scripts/package-vsix.sh --out FILE     # write the package there
#
# Needs the extension's npm dependencies (scripts/install-vscode.sh installs them) and
# cargo. The last line printed is the package's path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="$ROOT/editors/vscode"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    *) echo "package-vsix: unknown argument $1 (use --out FILE)" >&2; exit 2 ;;
  esac
done

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) TARGET=linux-x64 ;;
  Linux-aarch64) TARGET=linux-arm64 ;;
  *) echo "package-vsix: no VS Code platform for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
[ -x "$EXT/node_modules/.bin/vsce" ] || { echo "package-vsix: run scripts/install-vscode.sh first (the extension's npm dependencies are missing)" >&2; exit 1; }

VERSION="$(node -p "require('$EXT/package.json').version")"
[ -n "$OUT" ] || OUT="$EXT/out/boo-vscode-$TARGET-$VERSION.vsix"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

echo "package-vsix: cargo build --release" >&2
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/boo"
"$BIN" --version >/dev/null

# The server lives in the package only while vsce runs: a leftover copy would slip
# into the platform-neutral package (`npm run package`).
SERVER_DIR="$EXT/server"
trap 'rm -rf "$SERVER_DIR"' EXIT
rm -rf "$SERVER_DIR"
mkdir -p "$SERVER_DIR"
if command -v strip >/dev/null 2>&1; then
  strip -o "$SERVER_DIR/boo" "$BIN"
else
  cp "$BIN" "$SERVER_DIR/boo"
fi
chmod 755 "$SERVER_DIR/boo"

mkdir -p "$(dirname "$OUT")"
(cd "$EXT" && node esbuild.mjs --production &&
  ./node_modules/.bin/vsce package --no-dependencies --no-rewrite-relative-links --allow-missing-repository --target "$TARGET" -o "$OUT" >&2)
echo "package-vsix: $(du -h "$OUT" | cut -f1) $TARGET package with boo $("$SERVER_DIR/boo" --version | awk '{print $2}')" >&2
echo "$OUT"
