#!/usr/bin/env bash
# The README's offline-store walkthrough, runnable: backfill history, build a
# point-in-time training set, export to Parquet, materialize, schedule jobs,
# compute statistics and take a backup.
#   MLNODE_URL   default http://127.0.0.1:8080
#   MLNODE_TOKEN default: the contents of ./data/admin.token
#   OUT          where files go, default ./walkthrough-out
# The end-to-end tests run this script against a real node.
set -euo pipefail
URL=${MLNODE_URL:-http://127.0.0.1:8080}
TOKEN=${MLNODE_TOKEN:-$(cat ./data/admin.token)}
OUT=${OUT:-./walkthrough-out}
mkdir -p "$OUT"
AUTH="Authorization: Bearer $TOKEN"
JSON="Content-Type: application/json"

# 1. An entity and a feature view (skip if the first walkthrough made them).
curl -s -X POST "$URL/api/v1/entities" -H "$AUTH" -H "$JSON" \
  -d '{"name":"driver","join_keys":["driver_id"],"value_type":"int64"}' >/dev/null
curl -s -X POST "$URL/api/v1/feature-views" -H "$AUTH" -H "$JSON" -d '{
  "name": "driver_hourly_stats", "entities": ["driver"], "ttl": "7d",
  "features": [{"name": "conv_rate", "dtype": "float64"}, {"name": "acc_rate", "dtype": "float64"},
               {"name": "avg_daily_trips", "dtype": "int64"}]}' >/dev/null

# 2. Backfill history, offline only: the online table is left alone.
curl -sf -X POST "$URL/api/v1/feature-views/driver_hourly_stats/rows?online=false" -H "$AUTH" \
  -H "Content-Type: text/csv" --data-binary @- <<'CSV'
driver_id,event_timestamp,conv_rate,acc_rate,avg_daily_trips
1001,2026-04-01T08:00:00Z,0.50,0.90,10
1001,2026-04-01T10:00:00Z,0.60,0.91,11
1001,2026-04-01T12:00:00Z,0.70,0.92,12
1002,2026-04-01T09:00:00Z,0.30,0.80,5
CSV
echo

# 3. A training set: each label row gets the features as they were at its
#    time, never later ones. 1001 at 11:00 sees the 10:00 values.
cat > "$OUT/labels.csv" <<'CSV'
driver_id,event_timestamp,trip_completed
1001,2026-04-01T11:00:00Z,1
1001,2026-04-01T07:00:00Z,0
1002,2026-04-01T09:30:00Z,1
CSV
curl -sf -X POST "$URL/api/v1/historical-features?features=driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips&format=csv" \
  -H "$AUTH" -H "Content-Type: text/csv" --data-binary @"$OUT/labels.csv"

# 4. Export the offline log to Parquet for a data lake (DuckDB, Spark, pandas).
curl -sf "$URL/api/v1/feature-views/driver_hourly_stats/export?format=parquet" -H "$AUTH" -o "$OUT/driver_hourly_stats.parquet"
echo "exported $(wc -c < "$OUT/driver_hourly_stats.parquet") bytes of Parquet"

# 5. Materialize what was ingested since the last run into the online table,
#    and follow the job.
JOB=$(curl -sf -X POST "$URL/api/v1/materialize-incremental" -H "$AUTH" -H "$JSON" -d '{"feature_views":["driver_hourly_stats"]}' |
  sed -E 's/.*"id":"([0-9]+)".*/\1/')
for _ in $(seq 100); do
  STATE=$(curl -sf "$URL/api/v1/jobs/$JOB" -H "$AUTH")
  case "$STATE" in *'"state":"succeeded"'*|*'"state":"failed"'*) break ;; esac
  sleep 0.1
done
echo "$STATE"

# 6. Keep it fresh on a schedule, and run it once now.
curl -sf -X POST "$URL/api/v1/schedules" -H "$AUTH" -H "$JSON" -d '{
  "name": "refresh_driver_stats", "cron": "*/5 * * * *", "timezone": "Asia/Dubai",
  "job": "materialize-incremental", "args": {"feature_views": ["driver_hourly_stats"]}}'
echo
curl -sf -X POST "$URL/api/v1/schedules/refresh_driver_stats/run" -H "$AUTH" >/dev/null
for _ in $(seq 100); do
  RUNS=$(curl -sf "$URL/api/v1/schedules/refresh_driver_stats/runs" -H "$AUTH")
  case "$RUNS" in *'"status":"succeeded"'*) break ;; esac
  sleep 0.1
done
echo "$RUNS"

# 7. Feature statistics: the reference distributions for drift detection.
curl -sf -X POST "$URL/api/v1/jobs" -H "$AUTH" -H "$JSON" -d '{"kind":"statistics","args":{}}' >/dev/null
for _ in $(seq 100); do
  STATS=$(curl -s "$URL/api/v1/feature-views/driver_hourly_stats/stats" -H "$AUTH")
  case "$STATS" in *'"features"'*) break ;; esac
  sleep 0.1
done
echo "$STATS"

# 8. A hot backup into the backup directory (restore with `mlnode restore`).
curl -sf -X POST "$URL/api/v1/jobs" -H "$AUTH" -H "$JSON" -d '{"kind":"backup","args":{}}'
echo
