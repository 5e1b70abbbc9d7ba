#!/usr/bin/env bash
# ctest fixture: installs the pinned npm tools of tests/deploy (package.json +
# package-lock.json) into DEST/node_modules with `npm ci`. Skips the install when DEST
# already holds exactly this lock file's packages. Fails (never skips) without node/npm:
# the deploy checks need them (deploy/install-deps.sh installs them).
# Usage: npm_setup.sh SRC_DIR DEST_DIR
set -euo pipefail
src=$1
dest=$2
for tool in node npm; do
    if ! command -v "$tool" > /dev/null 2>&1; then
        echo "npm_setup: '$tool' not found; install Node.js and npm (bash deploy/install-deps.sh)" >&2
        exit 1
    fi
done
mkdir -p "$dest"
stamp="$dest/node_modules/.infvsr-lock.sha256"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "npm_setup: $dest/node_modules is up to date (node $(node --version))"
    exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
# --ignore-scripts: nothing here needs install scripts. Engine warnings (dclint wants a
# newer node; only its JSON schema file is used) are not errors.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "npm_setup: installed $(ls node_modules | wc -l) packages into $dest/node_modules (node $(node --version), npm $(npm --version))"
