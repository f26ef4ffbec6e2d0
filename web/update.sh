#!/usr/bin/env bash
# Updates the charting library bundled into the dashboard and the html report: uPlot, from the
# npm registry (`npm pack`, nothing else installed), into web/vendor/uplot/ with its licence.
# The files are embedded in the binary (src/web/assets.rs), so nothing is loaded from the
# network when a page opens. Usage: web/update.sh [VERSION]   (default: the latest)
set -euo pipefail
cd "$(dirname "$0")"
version="${1:-latest}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar xzf uplot-*.tgz)
dest=vendor/uplot
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
node -e 'process.stdout.write(require(process.argv[1]).version + "\n")' "$tmp/package/package.json" > "$dest/VERSION"
echo "uPlot $(cat "$dest/VERSION") in web/$dest; rebuild loads (cargo build) to embed it"
