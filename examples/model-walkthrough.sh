#!/usr/bin/env bash
# The README's model walkthrough, runnable: features for a 32-input logistic
# regression, a bundle built, signed and pushed with the mlnode CLI, an
# alias, predictions, a rollback and the alias's history.
#   MLNODE_URL    default http://127.0.0.1:8080
#   MLNODE_TOKEN  default: the contents of ./data/admin.token
#   MLNODE_BIN    default ./bin/mlnode
# Needs examples/build/logreg_c.wasm (make examples). The end-to-end tests
# run this script against a real node.
set -euo pipefail
URL=${MLNODE_URL:-http://127.0.0.1:8080}
export MLNODE_TOKEN=${MLNODE_TOKEN:-$(cat ./data/admin.token)}
MLNODE=${MLNODE_BIN:-./bin/mlnode}
AUTH="Authorization: Bearer $MLNODE_TOKEN"
JSON="Content-Type: application/json"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. Features: an entity and a view of 32 numbers, and one customer's row.
curl -sf -X POST "$URL/api/v1/entities" -H "$AUTH" -H "$JSON" \
  -d '{"name":"customer","join_keys":["customer_id"],"value_type":"string"}' >/dev/null
features=$(for i in $(seq 0 31); do printf '{"name":"f%d","dtype":"float64"}\n' "$i"; done | paste -sd, -)
curl -sf -X POST "$URL/api/v1/feature-views" -H "$AUTH" -H "$JSON" \
  -d "{\"name\":\"customer_profile\",\"entities\":[\"customer\"],\"features\":[$features],\"ttl\":\"30d\"}" >/dev/null
row=$(for i in $(seq 0 31); do printf '"f%d":0.%d\n' "$i" $((i % 10)); done | paste -sd, -)
curl -sf -X POST "$URL/api/v1/feature-views/customer_profile/rows" -H "$AUTH" -H "Content-Type: application/x-ndjson" \
  --data-binary "{\"customer_id\":\"c-42\",\"event_timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",$row}" >/dev/null

# 2. A bundle: manifest.json and the module (docs/bundle.md), built, signed, pushed.
mkdir -p "$WORK/churn"
cp examples/build/logreg_c.wasm "$WORK/churn/model.wasm"
inputs=$(for i in $(seq 0 31); do printf '"customer_profile:f%d"\n' "$i"; done | paste -sd, -)
cat > "$WORK/churn/manifest.json" <<JSON
{"name": "churn", "abi": "mlnode/v1", "module": "model.wasm",
 "inputs": [$inputs], "outputs": ["p_churn"],
 "description": "logistic regression over 32 profile features", "framework": "c",
 "metrics": {"auc": 0.81}, "training": {"dataset": "profiles-2026-11", "code_ref": "git:abc123"}}
JSON
"$MLNODE" keygen -o "$WORK/ci"
"$MLNODE" bundle build "$WORK/churn" -o "$WORK/churn.tar.gz"
"$MLNODE" bundle sign --key "$WORK/ci.key" "$WORK/churn.tar.gz"
"$MLNODE" bundle inspect "$WORK/churn.tar.gz"
"$MLNODE" bundle push "$WORK/churn.tar.gz" --url "$URL"
echo

# A second version: the same model with a new description is new content.
sed -i 's/over 32 profile features/over 32 profile features, retrained/' "$WORK/churn/manifest.json"
"$MLNODE" bundle build "$WORK/churn" -o "$WORK/churn2.tar.gz"
"$MLNODE" bundle push "$WORK/churn2.tar.gz" --url "$URL"
echo

# 3. Aliases: production on version 1, then 2, then rolled back.
curl -sf -X PUT "$URL/api/v1/models/churn/aliases/production" -H "$AUTH" -H "$JSON" -d '{"version":1}'; echo
curl -sf -X PUT "$URL/api/v1/models/churn/aliases/production" -H "$AUTH" -H "$JSON" -d '{"version":2}'; echo

# 4. Predictions: features are read from the online store by the entity.
curl -sf -X POST "$URL/api/v1/predict/churn" -H "$AUTH" -H "$JSON" -d '{"entities":{"customer_id":"c-42"}}'; echo

curl -sf -X POST "$URL/api/v1/models/churn/aliases/production/rollback" -H "$AUTH"; echo
curl -sf -X POST "$URL/api/v1/predict/churn" -H "$AUTH" -H "$JSON" -d '{"entities":{"customer_id":"c-42"}}'; echo

# 5. Who moved production, when, and to what.
curl -sf "$URL/api/v1/models/churn/aliases/production/history" -H "$AUTH"; echo
