#!/usr/bin/env bash
# The Neovim plugin installed the two ways its README gives, on Neovim 0.11.4:
#   lazy_spec    the lazy.nvim spec: the repository as the plugin, its `build` step
#                (`cargo build --release`) run in the plugin's folder, the folder on
#                'runtimepath', plugin/ sourced, `opts` handed to setup(); the plugin
#                finds the binary it built, with no `boo` on PATH, and runs a flow;
#   native_spec  Neovim's own vim.lsp.config('boo', …) + vim.lsp.enable('boo').
# lazy.nvim itself is in none of the package registries this project can reach, so
# lazy_spec performs the steps lazy.nvim takes for that spec on a clone of this
# checkout (with its uncommitted changes).
#
# The clone's target/ is a cached folder under .tools/: the first run builds the
# dependencies, later runs only boo itself (the build runs with the release profile's
# optimisation turned down through CARGO_PROFILE_RELEASE_* to keep the suite fast).
#
#   scripts/test-nvim-install.sh            # last line: "N passed, M failed"
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="$ROOT/.tools/nvim-install"
CLONE="$CACHE/boo"
mkdir -p "$CACHE/target"
rm -rf "$CLONE"
if ! git clone -q --no-hardlinks "$ROOT" "$CLONE"; then
  echo "test-nvim-install: cannot clone $ROOT"; echo "0 passed, 1 failed"; exit 1
fi
# What is on disk, not only what is committed: tracked changes and new files.
if ! git diff --quiet HEAD; then
  git diff HEAD --binary | git -C "$CLONE" apply --binary --whitespace=nowarn - || {
    echo "test-nvim-install: cannot carry the uncommitted changes into the clone"; echo "0 passed, 1 failed"; exit 1; }
fi
git ls-files --others --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$CLONE"
ln -s "$CACHE/target" "$CLONE/target"

# No boo on PATH: the plugin must find the one its build step made.
clean_path=""
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [ -n "$d" ] && [ ! -x "$d/boo" ] && clean_path="${clean_path:+$clean_path:}$d"
done

export PATH="$clean_path"
export BOO_PLUGIN_CLONE="$CLONE"
export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_INCREMENTAL=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=64
export BOO_NVIM_SPEC_DIR=tests/nvim-install
export SPEC_TIMEOUT="${SPEC_TIMEOUT:-1800}"
exec scripts/test-nvim.sh "$@"
