#!/bin/bash
# Build step: tus-js-client from npm (server/web/package-lock.json) into the build tree, and
# its browser bundle to OUT. No npm or no registry does not fail the build: OUT then holds
# a stub and the page says that uploads are unavailable (the browser tests fail loudly).
#   fetch_tus.sh SRC_DIR NPM_DIR OUT
set -uo pipefail
src=$1; dest=$2; out=$3
mkdir -p "$dest"
bundle="$dest/node_modules/tus-js-client/dist/tus.min.js"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -f "$bundle" || "$(cat "$dest/.lock.sha256" 2>/dev/null)" != "$want" ]]; then
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    if command -v npm >/dev/null && npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error; then
        echo "$want" > "$dest/.lock.sha256"
    else
        echo "fetch_tus: WARNING: npm ci failed: the web page is built WITHOUT tus-js-client (uploads disabled)" >&2
    fi
fi
if [[ -f "$bundle" ]]; then
    cp "$bundle" "$out.tmp"
else
    echo "/* tus-js-client was not available when infvsrd was built (npm ci failed) */" > "$out.tmp"
fi
mv "$out.tmp" "$out"
