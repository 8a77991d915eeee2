#!/usr/bin/env bash
# Screenshots of the Prefect UI showing a completed ticket run and its artifacts (for the README).
#
#   docs/ui_screenshot.sh
#
# Starts a throw-away `prefect server start` on a free 127.0.0.1 port (fresh PREFECT_HOME), runs
# `grin demo` against it in a temporary state dir (the shared .grin/demo is left alone; the trained
# model is taken from / cached in .grin/cache, so only the first run trains), looks up the
# `ticket-1` flow run and its `ticket-1-metrics` artifact through the Prefect API, and takes headless
# Chromium screenshots of
#   docs/img/prefect-ui-ticket-run.png       the flow run page, Artifacts tab (v2 UI, ?tab=Artifacts)
#   docs/img/prefect-ui-metrics-artifact.png the metrics table artifact page (v1 UI: all rows on one page)
# Each page is also dumped as DOM and checked for what it must show, and for the absence of
# forget-set text (questions, answers, capitalised key phrases); artifacts and logs of the run are
# checked the same way through the API. Nothing under docs/img is written unless all checks pass.
#
# Needs the project venv (.venv, `make demo` creates it) and Debian's chromium (installed if missing).
# Environment: GRIN_UI_KEEP_TMP=1 keeps the temporary directory (server log, demo log, DOM dumps);
# GRIN_UI_ALLOW_GATE_FAILURE=1 takes the screenshots even when the ticket ends in needs_review.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
py=$repo/.venv/bin/python
[[ -x $repo/.venv/bin/grin ]] || { echo "ui_screenshot: no .venv/bin/grin; run 'make demo' first" >&2; exit 1; }
start_s=$SECONDS
say() { printf '[ui_screenshot %4ds] %s\n' $((SECONDS - start_s)) "$*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get install -y chromium || { $sudo apt-get update && $sudo apt-get install -y chromium; }
fi

tmp=$(mktemp -d -t grin-ui.XXXXXX)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM -- "-$server_pid" 2>/dev/null || kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    if [[ ${GRIN_UI_KEEP_TMP:-0} == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ui=http://127.0.0.1:$port
api=$ui/api

# --- Prefect server (own process group, so the trap stops uvicorn and its services together) ---
mkdir -p "$tmp/prefect-server"
say "starting prefect server on $ui (log: $tmp/server.log)"
env -u PREFECT_API_URL \
    PREFECT_HOME="$tmp/prefect-server" \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_SERVER_UI_API_URL="$api" \
    setsid "$repo/.venv/bin/prefect" server start --host 127.0.0.1 --port "$port" \
    >"$tmp/server.log" 2>&1 &
server_pid=$!
for i in $(seq 180); do
    curl -fsS -o /dev/null "$api/health" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { tail -n 40 "$tmp/server.log" >&2; echo "ui_screenshot: prefect server exited" >&2; exit 1; }
    [[ $i -lt 180 ]] || { tail -n 40 "$tmp/server.log" >&2; echo "ui_screenshot: server not healthy after 180 s" >&2; exit 1; }
    sleep 1
done
say "server healthy"

# --- the demo, against that server (ML stages in-process: the demo sets GRIN_GPU_DISPATCH=inline) ---
cache=${GRIN_CACHE_DIR:-${GRIN_STATE_DIR:-$repo/.grin}/cache}
say "running grin demo (state $tmp/state, model cache $cache; the first run trains for minutes)"
set +e
PREFECT_API_URL=$api GRIN_STATE_DIR=$tmp/state GRIN_CACHE_DIR=$cache \
    "$repo/.venv/bin/grin" demo --json "$tmp/demo.json"
demo_rc=$?
set -e
[[ -s $tmp/demo.json ]] || { echo "ui_screenshot: grin demo failed (exit $demo_rc) without a summary" >&2; exit 1; }
outcome=$("$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["outcome"])' "$tmp/demo.json")
say "demo exit $demo_rc, ticket outcome: $outcome"
if [[ $outcome != completed ]]; then
    "$py" -c 'import json, sys; print("gate:", json.load(open(sys.argv[1]))["gate"])' "$tmp/demo.json" >&2
    if [[ ${GRIN_UI_ALLOW_GATE_FAILURE:-0} != 1 ]]; then
        echo "ui_screenshot: ticket ended in '$outcome', not 'completed'; no screenshots (GRIN_UI_ALLOW_GATE_FAILURE=1 takes them anyway)" >&2
        exit 1
    fi
fi

# --- ids through the Prefect API ---
post() { curl -fsS -X POST -H 'content-type: application/json' -d "$2" "$api$1"; }
post /flow_runs/filter '{"flow_runs": {"name": {"any_": ["ticket-1"]}}, "sort": "START_TIME_DESC", "limit": 1}' >"$tmp/flow_runs.json"
read -r flow_run_id state_type < <("$py" -c '
import json, sys
runs = json.load(open(sys.argv[1]))
print(runs[0]["id"], runs[0]["state_type"]) if runs else print("- -")' "$tmp/flow_runs.json")
[[ $flow_run_id != - ]] || { echo "ui_screenshot: no flow run named ticket-1" >&2; exit 1; }
[[ $state_type == COMPLETED ]] || { echo "ui_screenshot: flow run ticket-1 is $state_type, not COMPLETED" >&2; exit 1; }
post /artifacts/filter "{\"artifacts\": {\"flow_run_id\": {\"any_\": [\"$flow_run_id\"]}}}" >"$tmp/artifacts.json"
post /logs/filter "{\"logs\": {\"flow_run_id\": {\"any_\": [\"$flow_run_id\"]}}, \"limit\": 200}" >"$tmp/logs.json"
metrics_id=$("$py" -c '
import json, sys
arts = [a for a in json.load(open(sys.argv[1])) if a.get("key") == "ticket-1-metrics"]
print(max(arts, key=lambda a: a["created"])["id"] if arts else "-")' "$tmp/artifacts.json")
[[ $metrics_id != - ]] || { echo "ui_screenshot: flow run ticket-1 has no ticket-1-metrics artifact" >&2; exit 1; }
say "flow run ticket-1 = $flow_run_id ($state_type), metrics artifact = $metrics_id"

# --- screenshots (headless Chromium as root in a container: no sandbox, no GPU, a virtual-time budget
#     so the UI finishes loading) and DOM dumps of the same pages ---
chrome() {  # chrome SIZE MODE URL; MODE is --screenshot=FILE or --dump-dom
    local profile; profile=$(mktemp -d -p "$tmp" chrome.XXXXXX)
    timeout 180 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --window-size="$1" \
        --virtual-time-budget=20000 "$2" "$3" 2>>"$tmp/chromium.log"
    rm -rf "$profile"
}
mkdir -p "$tmp/img"
shots=(  # name|window size|url|text the page must show (|-separated)
    "prefect-ui-ticket-run|1440,1500|$ui/v2/runs/flow-run/$flow_run_id?tab=Artifacts|ticket-1|Completed|process-ticket|ticket-1-metrics|ticket-1-gate"
    "prefect-ui-metrics-artifact|1440,1000|$ui/artifacts/artifact/$metrics_id|ticket-1-metrics|forget_rougeL|retain_rougeL|model_utility|world_facts_truth_ratio"
)
for shot in "${shots[@]}"; do
    IFS='|' read -r name size url _ <<<"$shot"
    say "capturing $name ($url)"
    chrome "$size" --dump-dom "$url" >"$tmp/$name.html"
    chrome "$size" --screenshot="$tmp/img/$name.png" "$url" >/dev/null
    [[ -s $tmp/img/$name.png ]] || { echo "ui_screenshot: no screenshot for $name" >&2; exit 1; }
done

# --- checks: each page shows what it claims; no forget-set text in the pages, artifacts or logs ---
inbox=$(dirname "$(ls "$tmp"/state/demo/objects/inbox/*/forget.json | head -n 1)")
"$py" - "$inbox" "$tmp" "${shots[@]}" <<'EOF'
import json, sys
from pathlib import Path

inbox, tmp, shots = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
forget = json.loads((inbox / "forget.json").read_text())
phrases = json.loads((inbox / "keywords.json").read_text())
# full questions and answers, and the key phrases that are names (lower-case ones such as "author"
# are ordinary words that a UI may well contain)
needles = {r[k] for r in forget for k in ("question", "answer")} | {p for p in phrases if p != p.lower()}
problems = []
for shot in shots:
    name, _size, _url, *must = shot.split("|")
    dom = (tmp / f"{name}.html").read_text()
    problems += [f"{name}: page does not show {m!r}" for m in must if m not in dom]
    problems += [f"{name}: page shows forget-set text {n!r}" for n in needles if n in dom]
for source in ("artifacts.json", "logs.json"):
    text = (tmp / source).read_text()
    problems += [f"{source}: contains forget-set text {n!r}" for n in needles if n in text]
if problems:
    sys.exit("ui_screenshot: " + "\n  ".join(["checks failed:", *problems]))
print(f"checks passed: {len(shots)} pages show what they claim; {len(needles)} forget-set strings "
      "absent from the pages, the run's artifacts and its logs", file=sys.stderr)
EOF

mkdir -p "$repo/docs/img"
for shot in "${shots[@]}"; do
    name=${shot%%|*}
    cp "$tmp/img/$name.png" "$repo/docs/img/$name.png"
    say "wrote docs/img/$name.png ($(stat -c %s "$repo/docs/img/$name.png") bytes)"
done
say "done"
