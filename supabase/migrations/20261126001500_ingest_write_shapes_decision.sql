-- Decided (issue 12): ingest_write and ingest_write_batch do not check value
-- shapes against the widgets; the function does (zod schema and its
-- hand-written twin, tested to agree). Only service_role executes them, so
-- whoever calls them holds the function's own credentials and could write
-- through any other path as well; a check here would guard against the
-- function's own bugs, not against an API user. Measured with pgbench on this
-- project's 2-core machine (PostgreSQL 15, 8 clients, the documentation's
-- three-DataKey payload, a plpgsql shape check with the same rules called
-- before ingest_write): 3,483-3,782 tx/s without, 2,020-2,869 with, i.e.
-- 20-45% of the database's write throughput, which is this service's
-- bottleneck. What the database does enforce on every write, because it is
-- cheap and decides who may write what: the key (valid, not revoked or
-- expired, of this datasource), its ingest:write scope, the datasource being
-- enabled, a non-empty object of DataKeys that widgets of this datasource
-- declare, and a finite observed_at. See docs/security.md.
comment on function public.ingest_write(uuid, uuid, jsonb, timestamptz) is
  'Stores one request''s values (service_role only). Checks the key, scope, datasource and DataKeys; trusts the '
  'function for value shapes (measured cost 20-45% of write throughput; see 20261126001500).';
comment on function public.ingest_write_batch(jsonb) is
  'Stores several requests'' values in one commit (service_role only); refuses a request it cannot read alone. '
  'Checks keys, scopes, datasources and DataKeys; trusts the function for value shapes (see 20261126001500).';
