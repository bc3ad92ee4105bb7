#!/usr/bin/env bash
# Refreshes the console's screenshots in docs/console/: runs the browser
# test (a real headless Chromium signs in, edits, tests and saves a rule),
# which saves one PNG per page under <target dir>/console-screenshots/,
# and copies them here.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

scripts/ensure-chromium.sh
rm -rf "$target/console-screenshots"
cargo test --locked --test api -- console_browser
mkdir -p docs/console
for page in signin overview overview-phone rules rules-error rules-tester conversations accounts; do
    cp "$target/console-screenshots/$page.png" "docs/console/$page.png"
done
echo "docs/console/: $(ls docs/console | tr '\n' ' ')"
