-- Idempotency-Key: retries that never store twice. The write functions
-- (..._ingest_functions.sql) look a request's key up once its datasource row
-- is locked and record the first answer in the transaction that stored the
-- values; how it works and what it costs: docs/gateways.md.

-- The first answer to each Idempotency-Key of an API key, recorded in the
-- transaction that stored the values: a retry with the same key and body gets
-- this answer again and writes nothing; with another body it is refused.
-- Kept at least 24 hours: the write functions delete older records as they go
-- (private.expire_idempotency_keys, no scheduler needed). Only they read or
-- write this table.
create table private.idempotency_keys (
  key_id uuid not null,
  idempotency_key text not null,
  -- SHA-256 (hex) of what the request asked for: its time query and body.
  request_hash text not null,
  -- What the write function answered for the request.
  response jsonb not null,
  created_at timestamptz not null default now(),
  primary key (key_id, idempotency_key)
);
-- Expiry finds the oldest records with an index probe. A BRIN index, cheaper
-- per insert, made each look scan its unsummarised tail (every recent page):
-- 5-7 ms a look.
create index idempotency_keys_created_at_idx on private.idempotency_keys (created_at);
-- Vacuum after every 20,000 deleted records rather than a fifth of the table
-- (a day of records): the walk over deleted entries at each expiry stays short.
alter table private.idempotency_keys set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000);
-- Row level security on and no policy, in a schema PostgREST does not expose,
-- with no grant to any API role: no role but its owner (the write functions,
-- security definer) reads or writes it, even if a grant or an exposed schema
-- ever reached it.
alter table private.idempotency_keys enable row level security;
revoke all on table private.idempotency_keys from public, anon, authenticated, service_role;

-- Deletes Idempotency-Key records older than 24 hours, oldest first, up to
-- 20 times as many as the caller just recorded (at least 200). The write
-- functions call it from one call in ten that records keys: twice the rate
-- records expire at in steady state, so it keeps up and catches up with any
-- backlog, with no scheduler (pg_cron is not on every PostgreSQL this project
-- runs on). Calling it seldom matters more than the rows it deletes: each
-- scan starts at the oldest entry of the created_at index and walks over the
-- entries of records deleted since the last vacuum. When nothing is expired,
-- it costs one index probe and that walk.
-- Rows another call is deleting are skipped (skip locked), so that concurrent
-- write calls, of any datasource, never wait on each other here. The ctid list
-- makes the delete a TID scan whatever the planner guesses.
create function private.expire_idempotency_keys(p_recorded int)
returns void
language plpgsql
volatile
set search_path = ''
set enable_seqscan = off
as $$
begin
  delete from private.idempotency_keys c
  where c.ctid = any (array(
    select o.ctid from private.idempotency_keys o
    where o.created_at < now() - interval '24 hours'
    order by o.created_at
    limit greatest(200, 20 * p_recorded)
    for update skip locked
  ));
end;
$$;
revoke all on function private.expire_idempotency_keys(int) from public, anon, authenticated, service_role;

-- A recorded answer as a replay gives it: its observed_at and received_at in
-- the API's form (UTC, `Z`, milliseconds), whatever form the record holds
-- them in (a jsonb timestamp is written in the recording session's zone).
-- Only replays call it.
create function private.api_times(p_answer jsonb)
returns jsonb
language sql
stable
parallel safe
set search_path = ''
as $$
  select p_answer || jsonb_build_object(
    'observed_at', to_char((p_answer ->> 'observed_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'received_at', to_char((p_answer ->> 'received_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  );
$$;
revoke all on function private.api_times(jsonb) from public, anon, authenticated, service_role;
