#!/bin/bash
# Initialise the cluster once, then apply settings.sql. Run by the `init`
# service of the compose files; COCKROACH_HOST, COCKROACH_INSECURE or
# COCKROACH_CERTS_DIR come from there.
set -euo pipefail

for attempt in $(seq 1 60); do
  if output=$(cockroach init 2>&1); then
    echo "cluster initialised"
    break
  elif grep -q "already been initialized" <<<"$output"; then
    echo "cluster was already initialised"
    break
  fi
  echo "waiting for the nodes ($attempt): $output"
  sleep 2
done

cockroach sql --file /deploy/settings.sql

# Without a licence key a multi-node cluster is throttled after seven days.
if [ -n "${COCKROACH_LICENSE:-}" ]; then
  cockroach sql --execute "SET CLUSTER SETTING enterprise.license = '${COCKROACH_LICENSE}';"
  echo "licence key applied"
else
  echo "WARNING: no COCKROACH_LICENSE given; this multi-node cluster is throttled after 7 days"
fi
