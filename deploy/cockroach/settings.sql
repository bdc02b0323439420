-- Cluster settings the ledger service relies on, applied by init.sh.

CREATE DATABASE IF NOT EXISTS ledger;

-- Graceful drain (SIGTERM or `cockroach node drain`), in this order:
-- 1. stay up but report unready on /health?ready=1 long enough for HAProxy
--    to take the node out (haproxy.cfg checks every 2 s, 2 failures: 4 s);
SET CLUSTER SETTING server.shutdown.initial_wait = '8s';
-- 2. then let clients close their connections: the service's pool returns
--    them between transactions, and its retry loop moves to another node;
SET CLUSTER SETTING server.shutdown.connections.timeout = '15s';
-- 3. then give transactions in flight this long to finish.
SET CLUSTER SETTING server.shutdown.transactions.timeout = '10s';

-- Follower reads (`?consistency=stale`) read at follower_read_timestamp(),
-- about this plus a margin in the past. The default, stated for the record.
SET CLUSTER SETTING kv.closed_timestamp.target_duration = '3s';
