#!/usr/bin/env bash
# Installs Emacs (no X) and eglot from Debian's packages, for the generic-LSP-client
# test (scripts/test-emacs.sh). The .deb files are kept under .tools/apt-archives, so
# an install on a fresh machine does not download them again; an installed Emacs with
# eglot is a fast no-op. Prints the emacs binary on the last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKGS=(emacs-nox elpa-eglot)

have() {
  command -v emacs >/dev/null 2>&1 &&
    emacs --batch -Q --eval "(progn (require 'package) (setq package-directory-list '(\"/usr/share/emacs/site-lisp/elpa\")) (package-initialize) (require 'eglot) (kill-emacs 0))" >/dev/null 2>&1
}
if ! have; then
  ARCHIVES="$ROOT/.tools/apt-archives"
  mkdir -p "$ARCHIVES/partial"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-emacs: apt-get install ${PKGS[*]} (debs cached in ${ARCHIVES#$ROOT/})" >&2
  $SUDO apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o Dir::Cache::archives="$ARCHIVES" "${PKGS[@]}" >&2
  have || { echo "install-emacs: emacs with eglot is still not usable after the install" >&2; exit 1; }
fi
command -v emacs
