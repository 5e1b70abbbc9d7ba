#!/bin/bash
# Installs the Node tools of the server tests (tus-js-client, @redocly/cli, ajv, yaml) with
# `npm ci` into a folder of the BUILD tree, never into the source tree:
#   npm_setup.sh SRC_DIR DEST_DIR
# SRC_DIR holds package.json + package-lock.json (tests/server). Re-running with an unchanged
# lock file and a complete node_modules is a no-op. No npm or no registry = exit 1: the
# npm-based tests then fail (they are required in CI, which has the registry).
set -euo pipefail
src=$1
dest=$2
command -v npm >/dev/null || { echo "npm_setup: npm is not installed" >&2; exit 1; }
command -v node >/dev/null || { echo "npm_setup: node is not installed" >&2; exit 1; }
mkdir -p "$dest"
stamp="$dest/.lock.sha256"
want=$(sha256sum "$src/package-lock.json" "$src/package.json" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$dest/node_modules/tus-js-client" \
      && -d "$dest/node_modules/@redocly/cli" && -d "$dest/node_modules/ajv" ]]; then
    echo "npm_setup: $dest/node_modules is up to date"
    exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
rm -f "$stamp"
# --prefix keeps npm away from the source tree; no audit/fund network chatter.
npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error
for m in tus-js-client @redocly/cli ajv ajv-formats yaml; do
    [[ -d "$dest/node_modules/$m" ]] || { echo "npm_setup: $m missing after npm ci" >&2; exit 1; }
done
echo "$want" > "$stamp"
echo "npm_setup: installed into $dest/node_modules ($(node --version))"
