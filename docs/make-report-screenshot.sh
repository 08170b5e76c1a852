#!/usr/bin/env bash
# Regenerates docs/report-demo.png, the README's screenshot of `sensor report`
# on the bundled demo capture, with our own code and headless Chromium
# (Debian package `chromium`). Run from anywhere:
#   docs/make-report-screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cargo build --quiet -p sensor
target/debug/sensor report demo/msp-demo.pcap --rules rules/examples/demo.toml \
    --title "flowmon report: msp-demo.pcap" -o "$tmp/report.html" --no-progress
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$tmp/profile" --hide-scrollbars --window-size=1400,1800 \
    --screenshot="$PWD/docs/report-demo.png" "file://$tmp/report.html" 2>/dev/null
echo "docs/report-demo.png written"
