#!/usr/bin/env bash
# Flow files in a real schema-aware TOML tool: taplo (npm @taplo/cli, pinned, cached
# under .tools/taplo) follows each file's `#:schema` directive and checks it:
#   - every built-in flow (#:schema ../schemas/flow.schema.json) passes;
#   - the starter `boo flow new` writes (#:schema ../flow.schema.json, schema beside it) passes;
#   - a broken flow fails, with the offending key named.
# Last line "N passed, M failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASS=0; FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1"; }

VERSION=0.7.0
DIR="$ROOT/.tools/taplo"
TAPLO="$DIR/node_modules/.bin/taplo"
if [ "$(cat "$DIR/.stamp" 2>/dev/null)" != "$VERSION" ] || [ ! -x "$TAPLO" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  (cd "$DIR" && echo '{"name":"boo-taplo","private":true}' > package.json &&
    npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error "@taplo/cli@$VERSION" >&2) &&
    echo "$VERSION" > "$DIR/.stamp" || { notok "install @taplo/cli@$VERSION"; echo "$PASS passed, $FAIL failed"; exit 1; }
fi
BOO_BIN="${BOO_BIN:-target/debug/boo}"
case "$BOO_BIN" in /*) ;; *) BOO_BIN="$ROOT/$BOO_BIN" ;; esac
WORK="$(mktemp -d /tmp/boo-flow-schema.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

if timeout 120 "$TAPLO" check flows/*.toml >"$WORK/builtin.log" 2>&1; then
  ok "taplo checks every built-in flow against schemas/flow.schema.json: all valid"
else
  cat "$WORK/builtin.log"; notok "a built-in flow fails taplo's check"
fi

mkdir -p "$WORK/project"
if "$BOO_BIN" flow new cache-review --root "$WORK/project" >/dev/null &&
   (cd "$WORK/project" && timeout 120 "$TAPLO" check .boo/flows/cache-review.toml >"$WORK/starter.log" 2>&1); then
  ok "the starter of boo flow new passes taplo's check (schema found through its directive)"
else
  cat "$WORK/starter.log" 2>/dev/null; notok "the starter of boo flow new fails taplo's check"
fi

# Broken: an unknown key and a wrong value must be reported by taplo.
sed -e 's/^kind = "agent"$/kind = "robot"/' -e 's/^category = "analysis"$/category = "analysis"\ncolour = "red"/' \
  "$WORK/project/.boo/flows/cache-review.toml" > "$WORK/project/.boo/flows/broken.toml"
if (cd "$WORK/project" && timeout 120 "$TAPLO" check .boo/flows/broken.toml >"$WORK/broken.log" 2>&1); then
  notok "taplo accepted a broken flow"
else
  if grep -q '"robot" is not one of \["agent","code"\]' "$WORK/broken.log" && grep -q 'colour' "$WORK/broken.log"; then
    ok "taplo reports a broken flow: the bad kind and the unknown key"
  else
    cat "$WORK/broken.log"; notok "taplo failed the broken flow without naming its problems"
  fi
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
