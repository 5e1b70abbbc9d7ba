#!/bin/bash
# playwright-core (npm) for the browser tests, with `npm ci` into the build tree:
#   npm_setup.sh SRC_DIR DEST_DIR
# A no-op when the lock file is unchanged. No npm or no registry: exit 1 (the browser tests
# then fail: CI has the registry).
set -euo pipefail
src=$1; dest=$2
command -v npm >/dev/null || { echo "browser npm_setup: npm is not installed" >&2; exit 1; }
mkdir -p "$dest"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ -d "$dest/node_modules/playwright-core" && "$(cat "$dest/.lock.sha256" 2>/dev/null)" == "$want" ]]; then
    echo "browser npm_setup: up to date"; exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error
[[ -d "$dest/node_modules/playwright-core" ]] || { echo "playwright-core missing after npm ci" >&2; exit 1; }
echo "$want" > "$dest/.lock.sha256"
echo "browser npm_setup: installed playwright-core into $dest/node_modules"
