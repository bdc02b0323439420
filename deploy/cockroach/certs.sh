#!/bin/bash
# Create the certificates of the secure cluster, once. Run by the `certs`
# service of docker-compose.secure.yml. The CA key stays in its own volume,
# which only this script mounts.
set -euo pipefail
certs=/certs
ca_key=/ca/ca.key

if [ -f "$certs/ca.crt" ]; then
  echo "certificates exist; nothing to do"
  exit 0
fi
cockroach cert create-ca --certs-dir="$certs" --ca-key="$ca_key"
# One node certificate for every name a client may use to reach a node:
# each node, HAProxy in front of them, and localhost for the port mappings.
cockroach cert create-node roach1 roach2 roach3 haproxy localhost 127.0.0.1 \
  --certs-dir="$certs" --ca-key="$ca_key"
cockroach cert create-client root --certs-dir="$certs" --ca-key="$ca_key"
cockroach cert create-client ledger_writer --certs-dir="$certs" --ca-key="$ca_key"
# The service runs as uid 10001 (see the Dockerfile); libpq wants its key
# readable by its owner only.
chown 10001 "$certs/client.ledger_writer.key" "$certs/client.ledger_writer.crt"
chmod 600 "$certs/client.ledger_writer.key"
ls -l "$certs"
