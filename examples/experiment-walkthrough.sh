#!/usr/bin/env bash
# The README's experiment walkthrough, runnable: two versions of a model in
# a two-arm experiment, simulated traffic and outcome events, results, and
# a guardrail that stops the experiment because the treatment is slower.
#   MLNODE_URL    default http://127.0.0.1:8080
#   MLNODE_TOKEN  default: the contents of ./data/admin.token
#   MLNODE_BIN    default ./bin/mlnode
#   UNITS         simulated customers, default 400
# Needs examples/build/logreg_c.wasm (make examples). The end-to-end tests
# run this script against a real node started with --guardrail-interval 1s.
set -euo pipefail
URL=${MLNODE_URL:-http://127.0.0.1:8080}
export MLNODE_TOKEN=${MLNODE_TOKEN:-$(cat ./data/admin.token)}
MLNODE=${MLNODE_BIN:-./bin/mlnode}
UNITS=${UNITS:-400}
AUTH="Authorization: Bearer $MLNODE_TOKEN"
JSON="Content-Type: application/json"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. Features for the model: 32 numbers per customer.
curl -sf -X POST "$URL/api/v1/entities" -H "$AUTH" -H "$JSON" \
  -d '{"name":"shopper","join_keys":["shopper_id"],"value_type":"string"}' >/dev/null
features=$(for i in $(seq 0 31); do printf '{"name":"f%d","dtype":"float64"}\n' "$i"; done | paste -sd, -)
curl -sf -X POST "$URL/api/v1/feature-views" -H "$AUTH" -H "$JSON" \
  -d "{\"name\":\"shopper_profile\",\"entities\":[\"shopper\"],\"features\":[$features],\"ttl\":\"30d\"}" >/dev/null
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
row=$(for i in $(seq 0 31); do printf '"f%d":0.%d\n' "$i" $((i % 10)); done | paste -sd, -)
for u in $(seq 1 "$UNITS"); do
  echo "{\"shopper_id\":\"s-$u\",\"event_timestamp\":\"$NOW\",$row}"
done > "$WORK/rows.ndjson"
curl -sf -X POST "$URL/api/v1/feature-views/shopper_profile/rows" -H "$AUTH" -H "Content-Type: application/x-ndjson" \
  --data-binary @"$WORK/rows.ndjson" >/dev/null

# 2. Two versions of the model, and production on the first.
mkdir -p "$WORK/ranker"
cp examples/build/logreg_c.wasm "$WORK/ranker/model.wasm"
inputs=$(for i in $(seq 0 31); do printf '"shopper_profile:f%d"\n' "$i"; done | paste -sd, -)
for v in 1 2; do
  cat > "$WORK/ranker/manifest.json" <<JSON
{"name": "ranker", "abi": "mlnode/v1", "module": "model.wasm", "inputs": [$inputs], "outputs": ["p_buy"],
 "description": "ranker, training run $v"}
JSON
  "$MLNODE" bundle build "$WORK/ranker" -o "$WORK/ranker$v.tar.gz" >/dev/null
  "$MLNODE" bundle push "$WORK/ranker$v.tar.gz" --url "$URL" >/dev/null
done
curl -sf -X PUT "$URL/api/v1/models/ranker/aliases/production" -H "$AUTH" -H "$JSON" -d '{"version":1}' >/dev/null

# 3. The experiment: half the shoppers get version 2. "converted" is the
#    goal; "latency_ms" a guardrail that must not get worse.
curl -sf -X POST "$URL/api/v1/experiments" -H "$AUTH" -H "$JSON" -d '{
  "name": "ranker_v2", "model": "ranker", "unit": "shopper_id",
  "arms": [{"name": "control", "version": 1, "weight": 0.5}, {"name": "treatment", "version": 2, "weight": 0.5}],
  "metrics": [{"name": "converted", "type": "binomial", "direction": "increase", "role": "goal"},
              {"name": "latency_ms", "type": "mean", "direction": "decrease", "role": "guardrail"}],
  "breakdowns": ["country"]}'
echo
curl -sf -X POST "$URL/api/v1/experiments/ranker_v2/start" -H "$AUTH" >/dev/null

# 4. Traffic: every shopper asks for a prediction; the answer says which arm
#    served it. Then outcomes: the treatment converts twice as often but is
#    three times slower.
: > "$WORK/events.ndjson"
treated=0
for u in $(seq 1 "$UNITS"); do
  country=$([ $((u % 2)) -eq 0 ] && echo AE || echo FR)
  answer=$(curl -sf -X POST "$URL/api/v1/predict/ranker" -H "$AUTH" -H "$JSON" \
    -d "{\"entities\":{\"shopper_id\":\"s-$u\"},\"attributes\":{\"country\":\"$country\"}}")
  case "$answer" in
    *'"arm":"treatment"'*) rate=3; latency=300; treated=$((treated + 1)) ;;
    *) rate=6; latency=100 ;;
  esac
  if [ $((u % rate)) -eq 0 ]; then
    echo "{\"unit\":\"s-$u\",\"metric\":\"converted\",\"event_id\":\"buy-$u\"}" >> "$WORK/events.ndjson"
  fi
  echo "{\"unit\":\"s-$u\",\"metric\":\"latency_ms\",\"value\":$((latency + u % 13)),\"event_id\":\"lat-$u\"}" >> "$WORK/events.ndjson"
done
echo "$treated of $UNITS shoppers were served the treatment"
curl -sf -X POST "$URL/api/v1/events" -H "$AUTH" -H "Content-Type: application/x-ndjson" --data-binary @"$WORK/events.ndjson"
echo

# 5. Results: exposures are folded in within about a second.
sleep 2
curl -sf "$URL/api/v1/experiments/ranker_v2/results?sequential=true" -H "$AUTH"
echo

# 6. The guardrail: the node checks it on its own and stops the experiment;
#    every shopper is back on production, and the stop is in the audit log.
for _ in $(seq 60); do
  STATE=$(curl -sf "$URL/api/v1/experiments/ranker_v2" -H "$AUTH")
  case "$STATE" in *'"state":"stopped"'*) break ;; esac
  sleep 0.5
done
echo "$STATE"
curl -sf -X POST "$URL/api/v1/predict/ranker" -H "$AUTH" -H "$JSON" -d '{"entities":{"shopper_id":"s-1"}}'
echo
curl -sf "$URL/api/v1/audit?object=experiment/ranker_v2" -H "$AUTH" | grep -o '"action":"experiment\.[a-z]*"' | paste -sd' ' -
