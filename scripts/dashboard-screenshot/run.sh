#!/usr/bin/env bash
# Starts the stack (http launch profile, anonymous dashboard), sends one chat that calls two tools, waits until the
# analytics worker has written its rows, and screenshots the dashboard's trace of that chat turn.
# Usage: scripts/dashboard-screenshot/run.sh [output.png]   (default docs/images/dashboard-trace.png)
# Needs what the stack needs, plus Chromium (CHROMIUM, default /usr/bin/chromium). Ports 15080 and 5280 must be free.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/docs/images/dashboard-trace.png}")
dashboard=http://localhost:15080
api=http://localhost:5280
log=$(mktemp)

DOTNET_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS=true setsid dotnet run --project "$root/ChatStack.AppHost" --launch-profile http >"$log" 2>&1 &
apphost=$!
trap 'kill -TERM -- -$apphost 2>/dev/null || true; wait $apphost 2>/dev/null || true' EXIT

echo "waiting for the chat API (AppHost log: $log)"
for _ in $(seq 1 240); do curl -sf "$api/health" >/dev/null && break; sleep 2; done
curl -sf "$api/health" >/dev/null

token=$(curl -sf -X POST "$api/api/dev/token" -H 'content-type: application/json' -d '{"user_id":"dashboard-demo"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
session=$(curl -sf -N -D - -o /dev/null -X POST "$api/api/chat" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -H 'accept: text/event-stream' \
  -d '{"message": "What time is it in Tokyo, and what is (12.5 + 3) * 4?", "budget_max": 4000}' |
  tr -d '\r' | awk 'tolower($1) == "x-session-id:" { print $2 }')
echo "session $session"

# The dashboard's telemetry API (OTLP JSON): the trace whose invoke_agent span carries this conversation id, once
# the worker's insertAll spans of both tables are in it.
find_trace='
import json, sys, urllib.request
session, dashboard = sys.argv[1], sys.argv[2]
def spans(resource):
    with urllib.request.urlopen(f"{dashboard}/api/telemetry/spans?resource={resource}") as r:
        data = json.load(r)["data"]
    return [s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
trace = next((s["traceId"] for s in spans("chat-api") if s["name"] == "invoke_agent chatstack"
              and any(a["key"] == "gen_ai.conversation.id" and a["value"].get("stringValue") == session for a in s["attributes"])), None)
worker = {s["name"] for s in spans("analytics-worker") if s["traceId"] == trace}
print(trace if {"insertAll chat_events", "insertAll tool_invocations"} <= worker else "")
'
trace=""
for _ in $(seq 1 60); do
  trace=$(python3 -c "$find_trace" "$session" "$dashboard" 2>/dev/null || true)
  [ -n "$trace" ] && break
  sleep 1
done
[ -n "$trace" ] || { echo "no complete trace for session $session" >&2; exit 1; }
echo "trace $trace"

mkdir -p "$(dirname "$out")"
(cd "$(dirname "$0")" && dotnet run screenshot.cs -- "$dashboard" "$trace" "$out")
