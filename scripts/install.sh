#!/usr/bin/env bash
# Installs lth4sa for the current user (or under --prefix):
#   PREFIX/bin/lth4sa                 the command
#   PREFIX/lib/lth4sa/plugins/*.so    the first-party plugins and the CBAM example
#   PREFIX/include/lth4sa/*.h         the plugin SDK headers (ABI + header-only helpers)
# so that `lth4sa plugins` and `--sam se` work from any folder.
#   scripts/install.sh [--prefix DIR]      (default ~/.local)
# Builds first (./scripts/setup.sh) when the release build or the plugins are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$HOME/.local"
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { echo "error: --prefix needs a folder" >&2; exit 2; }; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option '$1'; usage: scripts/install.sh [--prefix DIR]" >&2; exit 2 ;;
    esac
done
binary=.build/release/lth4sa
if [ ! -x "$binary" ] || ! ls plugins/lib*.so >/dev/null 2>&1; then
    ./scripts/setup.sh
fi
mkdir -p "$prefix/bin" "$prefix/lib/lth4sa/plugins" "$prefix/include/lth4sa"
install -m 0755 "$binary" "$prefix/bin/lth4sa"
install -m 0755 plugins/lib*.so "$prefix/lib/lth4sa/plugins/"
install -m 0644 SDK/include/lth4sa/*.h "$prefix/include/lth4sa/"
echo "installed $prefix/bin/lth4sa, $(ls plugins/lib*.so | wc -l) plugins in $prefix/lib/lth4sa/plugins, SDK headers in $prefix/include/lth4sa"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "add $prefix/bin to PATH to run lth4sa by name" ;; esac
