#!/usr/bin/env bash
# Fresh clone to JupyterLab answering, warm package cache: uv (what dev.py does) vs pip.
# Usage: benchmarks/setup_time.sh [uv|pip]   (run from the repository; clones HEAD into /tmp)
set -euo pipefail
mode="${1:-uv}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'kill -- -"$server" 2>/dev/null || true; rm -rf "$work"' EXIT
start=$(date +%s.%N)
git clone -q "$repo" "$work/course"
cd "$work/course"
if [ "$mode" = pip ]; then
    python3 -m venv .venv
    grep -oE '[A-Za-z0-9._-]+==[^ ]+' environment.yml > constraints.txt
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[lab]"
    setsid .venv/bin/jupyter lab --no-browser --allow-root --port=8899 --ServerApp.token=t \
        >lab.log 2>&1 & server=$!
else
    setsid python3 dev.py lab --no-browser --port=8899 --ServerApp.token=t >lab.log 2>&1 & server=$!
fi
until curl -sf -H "Authorization: token t" http://127.0.0.1:8899/api/status >/dev/null; do
    sleep 0.5
done
end=$(date +%s.%N)
printf '%s: %.1f s to JupyterLab answering; venv %s\n' "$mode" "$(echo "$end - $start" | bc)" \
    "$(du -sh .venv | cut -f1)"
