#!/usr/bin/env bash
# The README's walkthrough, runnable: define an entity and a feature view,
# push rows, read them back the way a Feast client does.
#   MLNODE_URL   default http://127.0.0.1:8080
#   MLNODE_TOKEN default: the contents of ./data/admin.token
# The end-to-end tests run this script against a real node.
set -euo pipefail
URL=${MLNODE_URL:-http://127.0.0.1:8080}
TOKEN=${MLNODE_TOKEN:-$(cat ./data/admin.token)}
AUTH="Authorization: Bearer $TOKEN"
JSON="Content-Type: application/json"

# 1. An entity: what the features describe, and its join key.
curl -sf -X POST "$URL/api/v1/entities" -H "$AUTH" -H "$JSON" \
  -d '{"name":"driver","join_keys":["driver_id"],"value_type":"int64","description":"a ride-hailing driver"}'
echo

# 2. A feature view: typed features of that entity, with a TTL and an owner.
curl -sf -X POST "$URL/api/v1/feature-views" -H "$AUTH" -H "$JSON" -d '{
  "name": "driver_hourly_stats",
  "entities": ["driver"],
  "features": [
    {"name": "conv_rate", "dtype": "float64"},
    {"name": "acc_rate", "dtype": "float64"},
    {"name": "avg_daily_trips", "dtype": "int64"}
  ],
  "ttl": "7d",
  "owner": "growth-team",
  "tags": {"pii": "false"}
}'
echo

# 3. Rows, as NDJSON (JSON arrays and CSV work too). Timestamps are RFC 3339
#    or unix seconds/milliseconds.
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ); UNIX=$(date -u +%s)
curl -sf -X POST "$URL/api/v1/feature-views/driver_hourly_stats/rows" -H "$AUTH" \
  -H "Content-Type: application/x-ndjson" --data-binary @- <<NDJSON
{"driver_id": 1001, "event_timestamp": "$NOW", "conv_rate": 0.81, "acc_rate": 0.92, "avg_daily_trips": 14}
{"driver_id": 1002, "event_timestamp": $UNIX, "conv_rate": 0.47, "acc_rate": 0.88, "avg_daily_trips": 7}
NDJSON
echo

# 4. Read them back with Feast's request and response format.
curl -sf -X POST "$URL/get-online-features" -H "$AUTH" -H "$JSON" -d '{
  "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
  "entities": {"driver_id": [1001, 1002, 1003]}
}'
echo

# 5. A token for an application (roles: reader, writer, admin); the secret
#    is shown once.
curl -sf -X POST "$URL/api/v1/tokens" -H "$AUTH" -H "$JSON" -d '{"name":"scoring_app","role":"reader"}'
echo

# 6. Every change is in the tamper-evident audit log.
curl -sf "$URL/api/v1/audit?limit=3" -H "$AUTH"
echo
curl -sf "$URL/api/v1/audit/verify" -H "$AUTH"
echo
