# shellcheck shell=bash
# Where the build output goes, one rule for scripts/demo, scripts/test and packaging/build-deb,
# so none of them rebuilds what another built: $CARGO_TARGET_DIR when set, else a cache kept
# outside the clone, /var/cache/monitord/target as root, ~/.cache/monitord/target (or under
# $XDG_CACHE_HOME) otherwise. Sourced, not run: creates it and exports CARGO_TARGET_DIR as an
# absolute path (build-deb prints paths under it for other scripts to use).
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        CARGO_TARGET_DIR=/var/cache/monitord/target
    else
        CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/monitord/target"
    fi
fi
mkdir -p "$CARGO_TARGET_DIR"
CARGO_TARGET_DIR=$(cd "$CARGO_TARGET_DIR" && pwd)
export CARGO_TARGET_DIR
