-- The write functions the ingest-data Edge Function calls, and the key
-- lookup before them. Only service_role (the function's own credentials) may
-- execute them; ..._limits.sql adds the entry points with limits that the
-- function calls in production.
--
-- What they check on every write, because it is cheap and decides who may
-- write what: the key (valid, not revoked or expired, of this datasource),
-- its ingest:write scope, the datasource being enabled, a non-empty object of
-- DataKeys that widgets of this datasource declare, and an observed_at from
-- 0001 to 9999 (UTC). What they do not check: value shapes against the
-- widgets; the function does (zod schema and its hand-written twin, tested to
-- agree). Whoever calls them holds the function's own credentials and could
-- write through any other path as well, so a check here would guard against
-- the function's own bugs, not against an API user, and it costs: measured
-- with pgbench (PostgreSQL 15, 8 clients, the documentation's three-DataKey
-- payload, a plpgsql shape check with the same rules), 3,483-3,782 tx/s
-- without, 2,020-2,869 with, i.e. 20-45% of the database's write throughput,
-- which is this service's bottleneck. See docs/security.md.
--
-- Containment: one request's content never fails another's write. The batch
-- functions read every request's ids, values and times with guarded casts, and
-- refuse a request they cannot read alone with its PTxxx code (PostgREST's
-- codes, so that both store adapters map them to the same HTTP status).
--
-- Times leave them in the API's form, UTC, `Z`, milliseconds
-- (`2026-11-26T10:00:00.123Z`), whatever the session's TimeZone: jsonb would
-- write a timestamptz in the session's zone (with Europe/Berlin, 1800-01-01
-- comes out in local mean time, `+00:53:28`). The format,
-- to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') (MS cuts to
-- the millisecond), is written out in each function rather than kept in a
-- private helper: a SQL function with its own search_path is never inlined,
-- and such a helper cost 2.6 us a call against 0.4 us for the expression
-- (200,000 calls each). It holds for years 0001 to 9999 only (to_char writes
-- neither an era nor a sign), so other times are refused (PT400), as the
-- function's time.ts does before any of them.

-- Everything the function needs to authenticate a key, rate-limit it and
-- validate a payload, in one round trip: the key's state and limits, its
-- datasource and that datasource's widgets. Null when no key has this SHA-256 (hex).
create function public.ingest_resolve_key(p_key_hash text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'key_id', k.id,
    'scopes', to_jsonb(k.scopes),
    'expires_at', k.expires_at,
    'revoked', k.revoked_at is not null,
    'rate_limit', jsonb_build_object('per_second', k.rate_limit_per_second, 'burst', k.rate_limit_burst),
    'datasource_id', d.id,
    'datasource_name', d.name,
    'enabled', d.enabled,
    'config_version', d.config_version,
    'widgets', coalesce(
      (
        select jsonb_agg(
          jsonb_build_object(
            'id', w.id,
            'name', w.name,
            'widget_type', w.widget_type,
            'data_key', w.data_key,
            'settings', w.settings
          )
          order by w.data_key, w.id
        )
        from public.widgets w
        where w.datasource_id = d.id
      ),
      '[]'::jsonb
    )
  )
  from public.datasource_api_keys k
  join public.datasources d on d.id = k.datasource_id
  where k.key_hash = p_key_hash;
$$;
revoke all on function public.ingest_resolve_key(text) from public, anon, authenticated, service_role;
grant execute on function public.ingest_resolve_key(text) to service_role;

-- The time in `p_text`, an ISO 8601 UTC date-time as JavaScript's
-- toISOString() writes it (`2026-11-26T10:00:00.000Z`, fraction optional,
-- years 0001 to 9999), or null when it is anything else: another form, an
-- impossible date (2026-02-30), `infinity`. Checked by pattern and calendar
-- rather than with an exception handler, so it costs no subtransaction and never raises.
create function private.utc_time(p_text text)
returns timestamptz
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
declare
  m text[] := regexp_match(p_text, '^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?Z$');
begin
  if m is null or m[1]::int < 1 or m[2]::int not between 1 and 12 or m[4]::int > 23 or m[5]::int > 59
     or m[6]::int > 59
     or m[3]::int not between 1 and extract(day from make_date(m[1]::int, m[2]::int, 1) + interval '1 month - 1 day')
  then
    return null;
  end if;
  return p_text::timestamptz;
end;
$$;
revoke all on function private.utc_time(text) from public;

-- Stores one request's values in one transaction: the latest value of each
-- DataKey (unless a newer observation is already stored), a history row per
-- value when the datasource keeps history, the datasource's last_ingested_at,
-- the key's last_used_at (at most once a minute), and the Realtime broadcast
-- of the values that became the latest (private.broadcast_values: none when
-- nothing did, held back when over the datasource's budget). The key is
-- checked again here, so a revocation stops writes at once whatever the
-- function has cached.
create function public.ingest_write(
  p_datasource_id uuid,
  p_key_id uuid,
  p_values jsonb,
  p_observed_at timestamptz default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_received_at timestamptz := now();
  v_observed_at timestamptz := coalesce(p_observed_at, now());
  v_observed_text text;
  v_received_text text := to_char(v_received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  v_key public.datasource_api_keys%rowtype;
  v_datasource public.datasources%rowtype;
  v_unknown text;
  v_latest text[];
  v_stored text[];
begin
  select * into v_key from public.datasource_api_keys k
  where k.id = p_key_id and k.datasource_id = p_datasource_id;
  if not found or v_key.revoked_at is not null
     or (v_key.expires_at is not null and v_key.expires_at <= now()) then
    raise exception 'API key is not valid' using errcode = 'PT401';
  end if;
  if not 'ingest:write' = any (v_key.scopes) then
    raise exception 'API key lacks the ingest:write scope' using errcode = 'PT403';
  end if;

  -- Lock the datasource first, as ingest_write_batch does, so the two never deadlock.
  select * into v_datasource from public.datasources d where d.id = p_datasource_id for no key update;
  if not found then
    raise exception 'API key is not valid' using errcode = 'PT401'; -- its datasource was deleted meanwhile
  end if;
  if not v_datasource.enabled then
    raise exception 'Datasource is disabled' using errcode = 'PT403';
  end if;

  if jsonb_typeof(p_values) is distinct from 'object' or p_values = '{}'::jsonb then
    raise exception 'Values must be a non-empty JSON object' using errcode = 'PT400';
  end if;
  -- Infinite times fail this too (they would pin the latest value forever).
  if not (v_observed_at >= '0001-01-01 00:00:00+00' and v_observed_at < '10000-01-01 00:00:00+00') then
    raise exception 'observed_at must be a time from 0001-01-01 to 9999-12-31 (UTC)' using errcode = 'PT400';
  end if;
  v_observed_text := to_char(v_observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  select e.key into v_unknown
  from jsonb_object_keys(p_values) e (key)
  where not exists (
    select 1 from public.widgets w where w.datasource_id = p_datasource_id and w.data_key = e.key
  )
  limit 1;
  if v_unknown is not null then
    raise exception 'Unknown DataKey %', v_unknown using errcode = 'PT400';
  end if;

  with upserted as (
    insert into public.datasource_values as v (datasource_id, data_key, value, observed_at, received_at)
    select p_datasource_id, e.key, e.value, v_observed_at, v_received_at
    from jsonb_each(p_values) e
    on conflict (datasource_id, data_key) do update
      set value = excluded.value, observed_at = excluded.observed_at, received_at = excluded.received_at
      where v.observed_at <= excluded.observed_at
    returning v.data_key
  )
  select coalesce(array_agg(data_key order by data_key collate "C"), '{}') into v_latest from upserted;

  select array_agg(e.key order by e.key collate "C") into v_stored from jsonb_object_keys(p_values) e (key);

  if v_datasource.keep_history then
    insert into public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
    select p_datasource_id, e.key, e.value, v_observed_at, v_received_at
    from jsonb_each(p_values) e;
  end if;

  update public.datasources d
  set last_ingested_at = v_received_at
  where d.id = p_datasource_id
    and (d.last_ingested_at is null or d.last_ingested_at < v_received_at);

  update public.datasource_api_keys k
  set last_used_at = v_received_at
  where k.id = p_key_id
    and (k.last_used_at is null or k.last_used_at < v_received_at - interval '1 minute');

  -- Nothing became the latest (every value superseded): nothing to tell subscribers.
  if cardinality(v_latest) > 0 then
    perform private.broadcast_values(p_datasource_id,
      (select jsonb_object_agg(e.key, e.value) from jsonb_each(p_values) e where e.key = any (v_latest)),
      null, v_observed_text, v_received_text);
  end if;

  return jsonb_build_object(
    'stored', to_jsonb(v_stored),
    'superseded', to_jsonb(array(select s from unnest(v_stored) s where s <> all (v_latest))),
    'observed_at', v_observed_text,
    'received_at', v_received_text
  );
end;
$$;
revoke all on function public.ingest_write(uuid, uuid, jsonb, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write(uuid, uuid, jsonb, timestamptz) to service_role;
comment on function public.ingest_write(uuid, uuid, jsonb, timestamptz) is
  'Stores one request''s values (service_role only). Checks the key, scope, datasource and DataKeys; trusts the '
  'function for value shapes (measured cost 20-45% of write throughput; see docs/security.md).';

-- One request of a call to ingest_write_batch, checked: `error` is the PTxxx
-- code that refuses it, or 'replay' when `replay`, the recorded answer of an
-- earlier request with the same Idempotency-Key and hash, answers it and it
-- writes nothing. With limits (private.ingest_store_batch's `p_limits`):
-- `key_limits` its key's {requests per second, burst, readings per second,
-- burst} (null: none, or covered by a lease), its `workspace_id` and
-- `workspace_limits` {readings per second, burst, per day, per month}
-- (null: none), and `refusal` the limit that refused it (`error` PT429).
create type private.batch_request as (
  i int,
  datasource_id uuid,
  key_id uuid,
  vals jsonb,
  observed_at timestamptz,
  keep_history boolean,
  error text,
  idempotency_key text,
  request_hash text,
  replay jsonb,
  key_limits double precision[],
  workspace_id uuid,
  workspace_limits double precision[],
  refusal jsonb
);

-- Group commit: the function coalesces concurrent requests into one call and
-- one commit, instead of one transaction (and one WAL flush) per request.
-- Stores several requests' values in one transaction, with set-based
-- statements instead of a loop, with ingest_write's rules: a request whose
-- key is not valid, lacks ingest:write, whose datasource is disabled (or was
-- deleted meanwhile), that names an unknown DataKey or that cannot be read is
-- refused whole (PTxxx code) and writes nothing; the others are stored
-- together, and the batch commits or fails as one. Datasource rows are locked
-- in id order first, so concurrent batches never deadlock. One Realtime
-- broadcast per datasource of the batch (within its budget) carries the
-- values that became the latest, with `observed_at` (the newest) and
-- `observed_at_by_key`.
--
-- Each request is `{datasource_id, key_id, values, observed_at?,
-- idempotency_key?, request_hash?}`. An Idempotency-Key follows
-- ingest_write_readings' rules: looked up once the datasources are locked,
-- replayed (`{"replay": <answer>}`) with the same hash, PT422 with another,
-- PT400 when malformed; the answer recorded in the same transaction. The
-- answer recorded is `{observed_at, superseded, received_at}`: all a single
-- payload's response needs (`stored` is its own DataKeys). Only a single
-- payload can replay it, from either write function: the same key and hash
-- means the same body. Building ingest_write_readings' fuller form here
-- (`latest`, a sorted list per request) cost more than the record's insert.
-- A key sent twice within one call makes the call fail on the record's
-- primary key (nothing is stored); the function never sends such a call, and
-- retries each request of a failed call alone, so the second one replays.
--
-- Returns `{"received_at": ..., "results": [...]}` with one result per
-- request, in order: `{"observed_at": ..., "superseded": [...]}`,
-- `{"replay": ...}` or `{"code": "PT401"}`; or just `{"received_at": ...}`
-- when every request was stored, observed then, and superseded nothing (the
-- usual case, answered without a result per request to build and parse).
create function public.ingest_write_batch(p_requests jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  return private.ingest_store_batch(p_requests, null, false);
end;
$$;
revoke all on function public.ingest_write_batch(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb) to service_role;
comment on function public.ingest_write_batch(jsonb) is
  'Stores several requests'' values in one commit (service_role only); refuses a request it cannot read alone. '
  'Checks keys, scopes, datasources and DataKeys; trusts the function for value shapes (see docs/security.md).';

-- ingest_write_batch's work. With `p_limits` (the ingest-data function's
-- settings, ..._limits.sql), its key limits are taken in the same pass, from
-- the requests as read here, before anything is written: a request over its
-- key's limit is refused (PT429, `{code, limit}`) and counted in
-- ingest_throttles; a request sent `"leased": true` is covered by a lease
-- of its key the function holds, and the answer's `leases` ({key_id:
-- requests}) lists those this call lent. A workspace's limits are taken by
-- the caller once the write is done (ingest_store_batch_within_workspace_limits): with
-- `p_workspace_stage`, the answer lists what that stage needs, `workspaces`:
-- [{workspace_id, per_second, burst, per_day, per_month, readings}] for each
-- workspace with a limit; without it, a request whose workspace has a limit
-- makes it return `{"workspaces": true}` at once, having locked and written nothing.
create function private.ingest_store_batch(p_requests jsonb, p_limits jsonb, p_workspace_stage boolean)
returns jsonb
language plpgsql
volatile
set search_path = ''
-- Plans of the statements below do not depend on the batch: skip replanning.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_requests private.batch_request[];
  v_wanted int;
  v_locked uuid[];
  v_pairs int;
  v_latest int;
  v_superseded boolean;
  -- received_at in the API's form, for messages and answers (now() is the transaction's start: one value per call).
  v_received_at text := to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  -- Whether a request carries an Idempotency-Key (a jsonpath test: no cost worth counting for other batches).
  v_idempotent boolean := coalesce(p_requests @? '$[*].idempotency_key', false);
  v_found jsonb;
  v_results jsonb;
  v_seqscan text;
  v_recorded int;
  v_refused jsonb;
  -- The key stage's answer: the requests it refused, and the leases it lent.
  v_keys jsonb;
  v_leases jsonb;
  v_workspace_limited boolean;
  v_key_limited boolean;
  -- The limits' defaults, read once (null without p_limits: no limit at all).
  v_requests_per_second int := coalesce((p_limits ->> 'requests_per_second')::int, 0);
  v_requests_burst int := coalesce((p_limits ->> 'requests_burst')::int, 1);
  v_readings_per_second int := coalesce((p_limits ->> 'readings_per_second')::int, 0);
  v_readings_burst int := coalesce((p_limits ->> 'readings_burst')::int, 1);
  v_max_readings int := coalesce((p_limits ->> 'max_readings')::int, 1);
  v_workspace_per_second int := coalesce((p_limits ->> 'workspace_readings_per_second')::int, 0);
  v_workspace_burst int := coalesce((p_limits ->> 'workspace_readings_burst')::int, 0);
  v_workspace_per_day bigint := coalesce((p_limits ->> 'workspace_readings_per_day')::bigint, 0);
  v_workspace_per_month bigint := coalesce((p_limits ->> 'workspace_readings_per_month')::bigint, 0);
  v_workspaces jsonb;
begin
  -- Every cast is guarded: a request whose ids, values or time cannot be read
  -- gets a PTxxx code of its own, never an error that would abort the batch.
  v_requests := array(
    select row(c.ord, c.datasource_id, c.key_id, case when c.error is null then c.vals end, c.observed_at,
      c.keep_history, c.error, c.idempotency_key, c.request_hash, null,
      case when (c.key_limits[1] > 0 or c.key_limits[3] > 0) and not c.leased then c.key_limits end, c.workspace_id,
      case when c.workspace_limits[1] > 0 or c.workspace_limits[3] > 0 or c.workspace_limits[4] > 0
        then c.workspace_limits end,
      null
    )::private.batch_request
    from (
      select
        r.ord::int as ord,
        d.id as datasource_id,
        k.id as key_id,
        -- The key's limits: its own, else the defaults; its readings limit scaled like the defaults (as
        -- private.ingest_limits_of, which the property test in ingest_limits_test.ts holds this to).
        case when p_limits is not null and k.id is not null then array[
          coalesce(k.rate_limit_per_second, v_requests_per_second),
          coalesce(k.rate_limit_burst, v_requests_burst),
          case when k.rate_limit_per_second is null or v_requests_per_second <= 0 then v_readings_per_second
            else ceil(k.rate_limit_per_second::numeric * v_readings_per_second / v_requests_per_second) end,
          greatest(
            case when k.rate_limit_burst is null then v_readings_burst
              else ceil(k.rate_limit_burst::numeric * v_readings_burst / greatest(v_requests_burst, 1)) end,
            v_max_readings)
        ]::float8[] end as key_limits,
        -- Covered by a lease the function holds for its key (private.ingest_take_batch_key_limits).
        coalesce(r.value -> 'leased' = 'true'::jsonb, false) as leased,
        d.workspace_id,
        -- Its workspace's: its own, else the defaults; a burst of at least one full request (as ingest_limits_of).
        case when p_limits is not null and k.id is not null then array[
          coalesce(w.readings_per_second, v_workspace_per_second),
          greatest(coalesce(w.readings_burst, nullif(v_workspace_burst, 0),
            coalesce(w.readings_per_second, v_workspace_per_second)), v_max_readings),
          coalesce(w.readings_per_day, v_workspace_per_day),
          coalesce(w.readings_per_month, v_workspace_per_month)
        ]::float8[] end as workspace_limits,
        r.value -> 'values' as vals,
        t.observed_at,
        d.keep_history,
        case
          when k.id is null or k.revoked_at is not null or (k.expires_at is not null and k.expires_at <= now())
            then 'PT401'
          when not 'ingest:write' = any (k.scopes) or not d.enabled then 'PT403'
          when jsonb_typeof(r.value -> 'values') is distinct from 'object' or r.value -> 'values' = '{}'::jsonb
            then 'PT400'
          when t.observed_at is null then 'PT400'
          -- An Idempotency-Key is 1 to 255 visible ASCII characters (checked as in ingest_write_readings below).
          when r.value ? 'idempotency_key' and (
            jsonb_typeof(r.value -> 'idempotency_key') is distinct from 'string'
            or length(r.value ->> 'idempotency_key') not between 1 and 255
            or (r.value ->> 'idempotency_key') ~ '[^!-~]'
            or jsonb_typeof(r.value -> 'request_hash') is distinct from 'string'
          ) then 'PT400'
          when exists (
            select 1 from jsonb_object_keys(r.value -> 'values') e (key)
            where not exists (select 1 from public.widgets w where w.datasource_id = d.id and w.data_key = e.key)
          ) then 'PT400'
        end as error,
        r.value ->> 'idempotency_key' as idempotency_key,
        r.value ->> 'request_hash' as request_hash
      from (
        -- Ids read once per request, guarded by their pattern (offset 0 keeps them out of the join condition).
        select e.value, e.ord,
          case when e.value ->> 'key_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then (e.value ->> 'key_id')::uuid end as key_id,
          case when e.value ->> 'datasource_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then (e.value ->> 'datasource_id')::uuid end
            as datasource_id
        from jsonb_array_elements(case when jsonb_typeof(p_requests) = 'array' then p_requests else '[]' end)
          with ordinality e (value, ord)
        offset 0
      ) r
      cross join lateral (
        select case when coalesce(jsonb_typeof(r.value -> 'observed_at'), 'null') = 'null' then now()
          else private.utc_time(r.value ->> 'observed_at') end as observed_at
      ) t
      left join public.datasource_api_keys k
        on k.id = r.key_id and k.datasource_id = r.datasource_id
      left join public.datasources d on d.id = k.datasource_id
      left join public.workspace_limits w on w.workspace_id = d.workspace_id
    ) c
    order by c.ord
  );

  -- Limits: a workspace's are taken once the write is done (ingest_write_within_limits); a key's here,
  -- before anything is locked but the keys' buckets, as every path takes them.
  if p_limits is not null then
    select bool_or(q.workspace_limits is not null), bool_or(q.key_limits is not null)
    into v_workspace_limited, v_key_limited
    from unnest(v_requests) q;
    if not p_workspace_stage and v_workspace_limited then
      return jsonb_build_object('workspaces', true);
    end if;
    -- No request with a key limit to take (limits off, or every request leased): no key stage to call.
    if v_key_limited then
      v_keys := private.ingest_take_batch_key_limits(v_requests, p_limits);
      v_refused := v_keys -> 'refused';
      v_leases := v_keys -> 'leases';
    end if;
    if v_refused is not null then
      v_requests := array(
        select row(q.i, q.datasource_id, q.key_id, q.vals, q.observed_at, q.keep_history,
          case when v_refused ? q.i::text then 'PT429' else q.error end, q.idempotency_key, q.request_hash, q.replay,
          q.key_limits, q.workspace_id, q.workspace_limits, v_refused -> q.i::text
        )::private.batch_request
        from unnest(v_requests) q order by q.i
      );
      perform private.ingest_count_refusals(v_refused);
    end if;
    -- Each limited workspace's share: one reading per request its key limits admitted.
    if p_workspace_stage then
      v_workspaces := (
        select jsonb_agg(jsonb_build_object('workspace_id', s.workspace_id, 'per_second', s.l[1], 'burst', s.l[2],
          'per_day', s.l[3], 'per_month', s.l[4], 'readings', s.n) order by s.workspace_id)
        from (
          select q.workspace_id, min(q.workspace_limits) as l, count(*) as n
          from unnest(v_requests) q
          where q.workspace_limits is not null and q.error is distinct from 'PT429'
          group by q.workspace_id
        ) s
      );
    end if;
  end if;

  -- Lock each datasource once, in id order, and record the ingestion. A
  -- datasource deleted since the snapshot above is not locked: its requests
  -- are refused like those of a deleted key.
  with locked as (
    update public.datasources d
    set last_ingested_at = greatest(d.last_ingested_at, now())
    from (
      select s.id from public.datasources s
      where s.id in (select q.datasource_id from unnest(v_requests) q where q.error is null)
      order by s.id
      for no key update
    ) l
    where d.id = l.id
    returning d.id
  )
  select
    (select count(distinct q.datasource_id)::int from unnest(v_requests) q where q.error is null),
    array(select id from locked)
  into v_wanted, v_locked;
  if cardinality(v_locked) < v_wanted then
    v_requests := array(
      select row(q.i, q.datasource_id, q.key_id, q.vals, q.observed_at, q.keep_history,
        case when q.error is null and q.datasource_id <> all (v_locked) then 'PT401' else q.error end,
        q.idempotency_key, q.request_hash, null, q.key_limits, q.workspace_id, q.workspace_limits, q.refusal
      )::private.batch_request
      from unnest(v_requests) q order by q.i
    );
  end if;

  -- Idempotency-Keys are looked up once the datasources are locked: a
  -- concurrent request with the same key (same API key, so same datasource)
  -- has committed its record by now. A key already recorded replays its
  -- answer (same request_hash) or refuses the request (PT422). One index probe
  -- per request (LIMIT 1, planned with seq scans off), as in ingest_write_readings below.
  if v_idempotent then
    -- The recorded answers found, by request (usually none: then v_requests stays as it is).
    v_seqscan := current_setting('enable_seqscan');
    perform set_config('enable_seqscan', 'off', true);
    v_found := (
      select jsonb_object_agg(q.i, jsonb_build_object('request_hash', p.request_hash, 'response', p.response))
      from unnest(v_requests) q
      cross join lateral (
        select r.request_hash, r.response from private.idempotency_keys r
        where r.key_id = q.key_id and r.idempotency_key = q.idempotency_key
        limit 1
      ) p
      where q.error is null and q.idempotency_key is not null
    );
    perform set_config('enable_seqscan', v_seqscan, true);
    if v_found is not null then
      v_requests := array(
        select row(q.i, q.datasource_id, q.key_id, q.vals, q.observed_at, q.keep_history,
          case
            when not v_found ? q.i::text then q.error
            when v_found -> q.i::text ->> 'request_hash' = q.request_hash then 'replay'
            else 'PT422'
          end,
          q.idempotency_key, q.request_hash,
          case when v_found -> q.i::text ->> 'request_hash' = q.request_hash then v_found -> q.i::text -> 'response' end,
          q.key_limits, q.workspace_id, q.workspace_limits, q.refusal
        )::private.batch_request
        from unnest(v_requests) q
        order by q.i
      );
    end if;
  end if;

  -- The newest value per DataKey in the batch becomes the latest, unless a
  -- newer observation is stored already; the values that did are broadcast,
  -- one message per datasource.
  with newest as (
    select distinct on (q.datasource_id, e.key) q.datasource_id, e.key, e.value, q.observed_at
    from unnest(v_requests) q, jsonb_each(q.vals) e
    where q.error is null
    order by q.datasource_id, e.key, q.observed_at desc, q.i desc
  ), upserted as (
    insert into public.datasource_values as v (datasource_id, data_key, value, observed_at, received_at)
    select n.datasource_id, n.key, n.value, n.observed_at, now() from newest n
    on conflict (datasource_id, data_key) do update
      set value = excluded.value, observed_at = excluded.observed_at, received_at = excluded.received_at
      where v.observed_at <= excluded.observed_at
    returning v.datasource_id, v.data_key, v.value, v.observed_at
  ), sent as (
    select private.broadcast_values(u.datasource_id, jsonb_object_agg(u.data_key, u.value),
      jsonb_object_agg(u.data_key, to_char(u.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(u.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), v_received_at)
    from upserted u
    group by u.datasource_id
  )
  select (select count(*)::int from newest), (select count(*)::int from upserted), (select count(*) from sent)
  into v_pairs, v_latest;

  insert into public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
  select q.datasource_id, e.key, e.value, q.observed_at, now()
  from unnest(v_requests) q, jsonb_each(q.vals) e
  where q.error is null and q.keep_history
  order by q.i;

  update public.datasource_api_keys k
  set last_used_at = now()
  where k.id in (select q.key_id from unnest(v_requests) q where q.error is null)
    and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');

  -- A request's DataKey is superseded when the stored observation is newer
  -- than the request's. That cannot happen when every request of the batch was
  -- observed now and every DataKey became the latest: the usual case, answered
  -- without looking the values up again.
  v_superseded := v_latest < v_pairs
    or exists (select 1 from unnest(v_requests) q where q.error is null and q.observed_at <> now());

  -- The usual case, every request stored and observed now with nothing
  -- superseded, is answered without results: each is `{observed_at:
  -- received_at, superseded: []}`.
  if v_superseded or exists (select 1 from unnest(v_requests) q where q.error is not null) then
    v_results := (
      select coalesce(jsonb_agg(
        case when q.error = 'replay' then jsonb_build_object('replay', private.api_times(q.replay))
        when q.error = 'PT429' then jsonb_build_object('code', 'PT429', 'limit', q.refusal - 'datasource_id')
        when q.error is not null then jsonb_build_object('code', q.error)
        else jsonb_build_object('observed_at', to_char(q.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
          'superseded', case when v_superseded then coalesce((
            select jsonb_agg(v.data_key order by v.data_key collate "C")
            from public.datasource_values v
            where v.datasource_id = q.datasource_id and v.data_key in (select jsonb_object_keys(q.vals))
              and v.observed_at > q.observed_at
          ), '[]'::jsonb) else '[]'::jsonb end)
        end
        order by q.i
      ), '[]'::jsonb)
      from unnest(v_requests) q
    );
  end if;

  -- Record the answers of the requests that sent an Idempotency-Key, and expire old records.
  if v_idempotent then
    insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response)
    select q.key_id, q.idempotency_key, q.request_hash, jsonb_build_object(
      'observed_at', coalesce(v_results -> (q.i - 1) ->> 'observed_at', v_received_at),
      'superseded', coalesce(v_results -> (q.i - 1) -> 'superseded', '[]'::jsonb),
      'received_at', v_received_at
    )
    from unnest(v_requests) q
    where q.error is null and q.idempotency_key is not null;
    get diagnostics v_recorded = row_count;
    if v_recorded > 0 and random() < 0.1 then
      perform private.expire_idempotency_keys(v_recorded);
    end if;
  end if;

  return jsonb_build_object('received_at', v_received_at)
    || case when v_results is not null then jsonb_build_object('results', v_results) else '{}' end
    || case when v_workspaces is not null then jsonb_build_object('workspaces', v_workspaces) else '{}' end
    || case when v_leases is not null then jsonb_build_object('leases', v_leases) else '{}' end;
end;
$$;
revoke all on function private.ingest_store_batch(jsonb, jsonb, boolean) from public;

-- One request of a call to ingest_write_readings, checked: `error` is the
-- PTxxx code that refuses it, `replay` the recorded answer of an earlier
-- request with the same Idempotency-Key and body.
create type private.gateway_request as (
  i int,
  datasource_id uuid,
  key_id uuid,
  readings jsonb,
  keep_history boolean,
  idempotency_key text,
  request_hash text,
  error text,
  replay jsonb
);

-- One reading of a request: its values and time.
create type private.gateway_reading as (
  i int,
  n int,
  datasource_id uuid,
  vals jsonb,
  observed_at timestamptz,
  keep_history boolean
);

-- Stores the readings of several requests in one transaction, each request
-- all-or-nothing, with ingest_write_batch's rules: the key (valid, of this
-- datasource, ingest:write), the datasource (enabled), DataKeys that the
-- datasource's widgets declare. Each request is
-- `{datasource_id, key_id, readings: [{t, v}], idempotency_key?, request_hash?}`:
-- `v` the values, `t` the observation time in epoch milliseconds (null: now;
-- a number, not text, so that reading it costs no parsing: backfills send
-- thousands). A DataKey's latest value is its newest observation, whatever
-- the order the readings arrive in (a tie goes to the later reading); every
-- reading goes to the history when the datasource keeps it.
-- One Realtime broadcast per datasource carries the values that became the
-- latest, with each one's time in `observed_at_by_key`.
--
-- Idempotency: a request's Idempotency-Key is looked up after its datasource
-- is locked (so a concurrent request with the same key, which locks the same
-- datasource, waits and then finds the record), and its answer recorded
-- before commit. A request whose key is recorded gets `{"replay": <answer>}`
-- when its request_hash matches, PT422 otherwise; a second request with the
-- same key within one call, PT409.
--
-- Returns `{"received_at": ..., "results": [...]}`, one result per request,
-- in order: `{"readings": n, "latest": [...], "observed_at": ..., "superseded": [...]}`
-- (superseded: for a single reading, its DataKeys a newer observation kept
-- from becoming the latest), `{"replay": ...}` or `{"code": "PTxxx"}`.
-- Like ingest_write_batch, it never raises for one request's content.
create function public.ingest_write_readings(p_requests jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_requests private.gateway_request[];
  v_readings private.gateway_reading[];
  v_refused int[];
  v_locked uuid[];
  v_moved jsonb;
  v_sent int;
  v_results jsonb;
  -- received_at in the API's form, for messages and answers (now() is the transaction's start: one value per call).
  v_received_at text := to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  v_seqscan text;
  v_recorded int;
begin
  -- Each request, its key checked; a request whose ids cannot be read finds no key (PT401).
  v_requests := array(
    select row(
      r.ord::int, d.id, k.id,
      case when jsonb_typeof(r.value -> 'readings') = 'array' then r.value -> 'readings' end,
      d.keep_history,
      r.value ->> 'idempotency_key',
      r.value ->> 'request_hash',
      case
        when k.id is null or k.revoked_at is not null or (k.expires_at is not null and k.expires_at <= now())
          then 'PT401'
        when not 'ingest:write' = any (k.scopes) or not d.enabled then 'PT403'
        when jsonb_typeof(r.value -> 'readings') is distinct from 'array' or r.value -> 'readings' = '[]'::jsonb
          then 'PT400'
        when r.value ? 'idempotency_key' and (
          jsonb_typeof(r.value -> 'idempotency_key') is distinct from 'string'
          -- Length and characters checked apart: the regex '^[!-~]{1,255}$' cost 48 us a key (a
          -- bounded repeat of 255), the two checks 0.6 us.
          or length(r.value ->> 'idempotency_key') not between 1 and 255
          or (r.value ->> 'idempotency_key') ~ '[^!-~]'
          or jsonb_typeof(r.value -> 'request_hash') is distinct from 'string'
        ) then 'PT400'
      end,
      null
    )::private.gateway_request
    from (
      -- Ids read once per request, guarded by their pattern (offset 0 keeps them out of the join condition).
      select e.value, e.ord,
        case when e.value ->> 'key_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then (e.value ->> 'key_id')::uuid end as key_id,
        case when e.value ->> 'datasource_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then (e.value ->> 'datasource_id')::uuid end
          as datasource_id
      from jsonb_array_elements(case when jsonb_typeof(p_requests) = 'array' then p_requests else '[]' end)
        with ordinality e (value, ord)
      offset 0
    ) r
    left join public.datasource_api_keys k
      on k.id = r.key_id and k.datasource_id = r.datasource_id
    left join public.datasources d on d.id = k.datasource_id
    order by r.ord
  );

  -- Each reading of the requests not refused yet; observed_at null when unreadable.
  v_readings := array(
    select row(
      q.i, e.ord::int, q.datasource_id, e.value -> 'v',
      case
        when coalesce(jsonb_typeof(e.value -> 't'), 'null') = 'null' then now()
        -- Epoch milliseconds from 0001-01-01 to 9999-12-31 (a guarded cast: never raises).
        when jsonb_typeof(e.value -> 't') = 'number'
          and (e.value -> 't')::numeric between -62135596800000 and 253402300799999
          then 'epoch'::timestamptz + (e.value -> 't')::numeric::bigint * interval '1 millisecond'
      end,
      q.keep_history
    )::private.gateway_reading
    from unnest(v_requests) q, jsonb_array_elements(q.readings) with ordinality e (value, ord)
    where q.error is null
    order by q.i, e.ord
  );

  -- A request with a reading that is not a non-empty object of known DataKeys,
  -- or whose time cannot be read, is refused whole (PT400).
  v_refused := array(
    select x.i from unnest(v_readings) x
    where jsonb_typeof(x.vals) is distinct from 'object' or x.vals = '{}'::jsonb
      or x.observed_at is null or not isfinite(x.observed_at)
    union
    select k.i from (
      select distinct x.i, x.datasource_id, e.key
      from unnest(v_readings) x, jsonb_object_keys(case when jsonb_typeof(x.vals) = 'object' then x.vals end) e (key)
    ) k
    where not exists (select 1 from public.widgets w where w.datasource_id = k.datasource_id and w.data_key = k.key)
  );

  -- Lock each datasource once, in id order (as ingest_write_batch does), and
  -- record the ingestion. A datasource deleted meanwhile is not locked: its
  -- requests are refused like those of a deleted key.
  with locked as (
    update public.datasources d
    set last_ingested_at = greatest(d.last_ingested_at, now())
    from (
      select s.id from public.datasources s
      where s.id in (select q.datasource_id from unnest(v_requests) q where q.error is null and q.i <> all (v_refused))
      order by s.id
      for no key update
    ) l
    where d.id = l.id
    returning d.id
  )
  select array(select id from locked) into v_locked;

  -- Look up the Idempotency-Keys once the datasources are locked: a
  -- concurrent request with the same API key locks the same datasource, so
  -- it has committed its record by now. A key already recorded replays its
  -- answer (same request_hash) or refuses the request (PT422); a key sent twice
  -- within this call refuses the second request (PT409). The answers are
  -- recorded at the end, in this transaction.
  --
  -- The lookup is one index probe per request whatever the table's size when
  -- the session planned it: LIMIT 1 makes it a probe per request, and seq
  -- scans are off while it is planned. Otherwise a session that started while
  -- the table was nearly empty would keep a plan that scans it whole for every
  -- request (a third of the throughput lost as it grew, docs/gateways.md).
  v_seqscan := current_setting('enable_seqscan');
  perform set_config('enable_seqscan', 'off', true);
  v_requests := array(
    select row(q.i, q.datasource_id, q.key_id, q.readings, q.keep_history, q.idempotency_key, q.request_hash,
      case
        when q.error is not null then q.error
        when q.i = any (v_refused) then 'PT400'
        when q.datasource_id <> all (v_locked) then 'PT401'
        when q.idempotency_key is null then null
        when exists (
          select 1 from unnest(v_requests) o
          where o.key_id = q.key_id and o.idempotency_key = q.idempotency_key and o.i < q.i
        ) then 'PT409'
        when p.request_hash <> q.request_hash then 'PT422'
      end,
      case when q.error is null and q.idempotency_key is not null and p.request_hash = q.request_hash then p.response end
    )::private.gateway_request
    from unnest(v_requests) q
    left join lateral (
      select r.request_hash, r.response from private.idempotency_keys r
      where q.idempotency_key is not null and r.key_id = q.key_id and r.idempotency_key = q.idempotency_key
      limit 1
    ) p on true
    order by q.i
  );
  perform set_config('enable_seqscan', v_seqscan, true);

  -- Only the readings of requests that are neither refused nor replayed are written.
  if exists (select 1 from unnest(v_requests) q where q.error is not null or q.replay is not null) then
    v_readings := array(
      select x from unnest(v_readings) x join unnest(v_requests) q on q.i = x.i
      where q.error is null and q.replay is null
      order by x.i, x.n
    );
  end if;

  -- The newest reading per DataKey becomes the latest unless a newer one is
  -- stored; one broadcast per datasource with the values that did.
  with newest as (
    select distinct on (x.datasource_id, e.key) x.i, x.datasource_id, e.key, e.value, x.observed_at
    from unnest(v_readings) x, jsonb_each(x.vals) e
    order by x.datasource_id, e.key, x.observed_at desc, x.i desc, x.n desc
  ), upserted as (
    insert into public.datasource_values as v (datasource_id, data_key, value, observed_at, received_at)
    select n.datasource_id, n.key, n.value, n.observed_at, now() from newest n
    on conflict (datasource_id, data_key) do update
      set value = excluded.value, observed_at = excluded.observed_at, received_at = excluded.received_at
      where v.observed_at <= excluded.observed_at
    returning v.datasource_id, v.data_key, v.value, v.observed_at
  ), sent as (
    select private.broadcast_values(u.datasource_id, jsonb_object_agg(u.data_key, u.value),
      jsonb_object_agg(u.data_key, to_char(u.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(u.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), v_received_at)
    from upserted u
    group by u.datasource_id
  )
  select
    (select coalesce(jsonb_object_agg(m.i, m.keys), '{}'::jsonb) from (
      select n.i, jsonb_agg(n.key order by n.key collate "C") as keys
      from newest n join upserted u on u.datasource_id = n.datasource_id and u.data_key = n.key
      group by n.i
    ) m),
    (select count(*)::int from sent)
  into v_moved, v_sent;

  insert into public.datasource_readings (datasource_id, data_key, value, observed_at, received_at)
  select x.datasource_id, e.key, e.value, x.observed_at, now()
  from unnest(v_readings) x, jsonb_each(x.vals) e
  where x.keep_history;

  update public.datasource_api_keys k
  set last_used_at = now()
  where k.id in (select q.key_id from unnest(v_requests) q where q.error is null and q.replay is null)
    and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');

  -- One result per request. `superseded`, for a request of one reading: its
  -- DataKeys whose stored observation is newer than the reading's.
  with summary as (
    select x.i, count(*)::int as n, max(x.observed_at) as observed_at
    from unnest(v_readings) x group by x.i
  )
  select coalesce(jsonb_agg(
    case
      when q.error is not null then jsonb_build_object('code', q.error)
      when q.replay is not null then jsonb_build_object('replay', private.api_times(q.replay))
      else jsonb_build_object(
        'readings', s.n,
        'latest', coalesce(v_moved -> q.i::text, '[]'::jsonb),
        'observed_at', to_char(s.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'superseded', case when s.n = 1 and jsonb_array_length(coalesce(v_moved -> q.i::text, '[]'::jsonb))
          < (select count(*) from jsonb_object_keys(q.readings -> 0 -> 'v')) then coalesce((
          select jsonb_agg(v.data_key order by v.data_key collate "C")
          from public.datasource_values v
          where v.datasource_id = q.datasource_id and v.data_key in (select jsonb_object_keys(q.readings -> 0 -> 'v'))
            and v.observed_at > s.observed_at
        ), '[]'::jsonb) else '[]'::jsonb end,
        'received_at', v_received_at
      )
    end
    order by q.i
  ), '[]'::jsonb)
  into v_results
  from unnest(v_requests) q left join summary s on s.i = q.i;

  -- Record the answers of the requests that sent an Idempotency-Key. A record
  -- that appeared meanwhile (a writer that bypassed the datasource lock)
  -- fails the call: the function then retries each request alone, and the
  -- retry replays it.
  insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response)
  select q.key_id, q.idempotency_key, q.request_hash, v_results -> (q.i - 1)
  from unnest(v_requests) q
  where q.error is null and q.replay is null and q.idempotency_key is not null;

  get diagnostics v_recorded = row_count;
  if v_recorded > 0 and random() < 0.1 then
    perform private.expire_idempotency_keys(v_recorded);
  end if;

  return jsonb_build_object('received_at', v_received_at, 'results', v_results);
end;
$$;
revoke all on function public.ingest_write_readings(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_readings(jsonb) to service_role;
comment on function public.ingest_write_readings(jsonb) is
  'Stores the readings of several requests in one commit, with Idempotency-Keys (service_role only). '
  'Checks keys, scopes, datasources, DataKeys and times; trusts the function for value shapes (see docs/security.md).';
