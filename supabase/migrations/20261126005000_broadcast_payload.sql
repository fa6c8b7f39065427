-- Broadcast payloads in the API's one time form, and no empty broadcasts.
--
-- 1. The `values` broadcasts carried their times (observed_at, received_at,
--    observed_at_by_key) as jsonb writes a timestamptz:
--    `2026-11-26T10:00:00.123456+00:00`, with 0 to 6 fraction digits. Every
--    time the API hands out is now written one way, as the function's HTTP
--    responses write it: UTC, `Z`, milliseconds (`2026-11-26T10:00:00.123Z`),
--    cut (not rounded) to the millisecond as the function's normalizeTime
--    (supabase/functions/ingest-data/time.ts) cuts the database's times.
--    datasource_latest_values, the dashboards' first read, returns the same
--    form (its time columns become text: a timestamptz column reaches clients
--    in the jsonb form above).
-- 2. ingest_write broadcast `"values": {}` when every value was superseded (an
--    older observation: nothing became the latest). The contract is one
--    message per datasource per commit carrying the values that became the
--    latest, so it now sends nothing then. ingest_write_batch and
--    ingest_write_readings send one message per datasource that had a value
--    upserted, so never an empty one.
-- 3. ingest_write_batch's message had no observed_at: a subscriber took the
--    time of receipt for the time of observation, so a batch request observed
--    at 10:00:00 and received at 10:00:05 made the subscriber drop a later
--    observation of 10:00:03. It now carries observed_at (the newest) and
--    observed_at_by_key, as ingest_write_readings' message does.
-- The functions are otherwise unchanged (20261126001000_ingest_write_containment.sql,
-- 20261126001700_ids_read_once.sql, 20261126002000_datasource_latest_values.sql).

-- The format, to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
-- (MS cuts to the millisecond), is written out in each function rather than
-- kept in a private helper: a SQL function with its own search_path is never
-- inlined, and such a helper cost 2.6 us a call against 0.4 us for the
-- expression (200,000 calls each); ingest_write_batch formats one time per
-- DataKey and datasource (25 for 64 requests on 8 datasources).

-- ingest_write: no message when nothing became the latest; the message's times in the API's form.
create or replace function public.ingest_write(
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
  if not isfinite(v_observed_at) then
    raise exception 'observed_at must be a finite time' using errcode = 'PT400';
  end if;
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
    perform realtime.send(
      jsonb_build_object(
        'datasource_id', p_datasource_id,
        'observed_at', to_char(v_observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'received_at', to_char(v_received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'values', (select jsonb_object_agg(e.key, e.value) from jsonb_each(p_values) e where e.key = any (v_latest))
      ),
      'values',
      'datasource:' || p_datasource_id::text,
      true
    );
  end if;

  return jsonb_build_object(
    'stored', to_jsonb(v_stored),
    'superseded', to_jsonb(array(select s from unnest(v_stored) s where s <> all (v_latest))),
    'observed_at', v_observed_at,
    'received_at', v_received_at
  );
end;
$$;
revoke all on function public.ingest_write(uuid, uuid, jsonb, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write(uuid, uuid, jsonb, timestamptz) to service_role;

-- ingest_write_batch: the message's times in the API's form, with observed_at and observed_at_by_key.
create or replace function public.ingest_write_batch(p_requests jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
-- Plans of the statements below do not depend on the batch: skip replanning.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_requests private.ingest_request[];
  v_wanted int;
  v_locked uuid[];
  v_pairs int;
  v_latest int;
  v_superseded boolean;
  -- The messages' received_at in the API's form (now() is the transaction's start: one value per call).
  v_received_at text := to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
begin
  -- Every cast is guarded: a request whose ids, values or time cannot be read
  -- gets a PTxxx code of its own, never an error that would abort the batch.
  v_requests := array(
    select row(c.ord, c.datasource_id, c.key_id, case when c.error is null then c.vals end, c.observed_at,
      c.keep_history, c.error)::private.ingest_request
    from (
      select
        r.ord::int as ord,
        d.id as datasource_id,
        k.id as key_id,
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
          when exists (
            select 1 from jsonb_object_keys(r.value -> 'values') e (key)
            where not exists (select 1 from public.widgets w where w.datasource_id = d.id and w.data_key = e.key)
          ) then 'PT400'
        end as error
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
    ) c
    order by c.ord
  );

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
        case when q.error is null and q.datasource_id <> all (v_locked) then 'PT401' else q.error end
      )::private.ingest_request
      from unnest(v_requests) q order by q.i
    );
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
    select realtime.send(
      jsonb_build_object(
        'datasource_id', u.datasource_id,
        'observed_at', to_char(max(u.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'received_at', v_received_at,
        'values', jsonb_object_agg(u.data_key, u.value),
        'observed_at_by_key', jsonb_object_agg(u.data_key, to_char(u.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      ),
      'values',
      'datasource:' || u.datasource_id::text,
      true
    )
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

  if not v_superseded and not exists (select 1 from unnest(v_requests) q where q.error is not null) then
    return jsonb_build_object('received_at', now());
  end if;
  return jsonb_build_object('received_at', now(), 'results', (
    select coalesce(jsonb_agg(
      case when q.error is not null then jsonb_build_object('code', q.error)
      else jsonb_build_object('observed_at', q.observed_at, 'superseded', case when v_superseded then coalesce((
          select jsonb_agg(v.data_key order by v.data_key collate "C")
          from public.datasource_values v
          where v.datasource_id = q.datasource_id and v.data_key in (select jsonb_object_keys(q.vals))
            and v.observed_at > q.observed_at
        ), '[]'::jsonb) else '[]'::jsonb end)
      end
      order by q.i
    ), '[]'::jsonb)
    from unnest(v_requests) q
  ));
end;
$$;
revoke all on function public.ingest_write_batch(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb) to service_role;

-- ingest_write_readings: the message's times in the API's form.
create or replace function public.ingest_write_readings(p_requests jsonb)
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
  -- The messages' received_at in the API's form (now() is the transaction's start: one value per call).
  v_received_at text := to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
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
          or (r.value ->> 'idempotency_key') !~ '^[!-~]{1,255}$'
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
    left join private.idempotency_keys p on p.key_id = q.key_id and p.idempotency_key = q.idempotency_key
    order by q.i
  );

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
    select realtime.send(
      jsonb_build_object(
        'datasource_id', u.datasource_id,
        'observed_at', to_char(max(u.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'received_at', v_received_at,
        'values', jsonb_object_agg(u.data_key, u.value),
        'observed_at_by_key', jsonb_object_agg(u.data_key, to_char(u.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      ),
      'values',
      'datasource:' || u.datasource_id::text,
      true
    )
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
      when q.replay is not null then jsonb_build_object('replay', q.replay)
      else jsonb_build_object(
        'readings', s.n,
        'latest', coalesce(v_moved -> q.i::text, '[]'::jsonb),
        'observed_at', s.observed_at,
        'superseded', case when s.n = 1 and jsonb_array_length(coalesce(v_moved -> q.i::text, '[]'::jsonb))
          < (select count(*) from jsonb_object_keys(q.readings -> 0 -> 'v')) then coalesce((
          select jsonb_agg(v.data_key order by v.data_key collate "C")
          from public.datasource_values v
          where v.datasource_id = q.datasource_id and v.data_key in (select jsonb_object_keys(q.readings -> 0 -> 'v'))
            and v.observed_at > s.observed_at
        ), '[]'::jsonb) else '[]'::jsonb end,
        'received_at', now()
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

  -- Expire records older than a day, up to 1,000 at a time, from one call in
  -- twenty of those that add records: the database keeps the table small, no
  -- scheduler needed.
  if random() < 0.05
     and exists (select 1 from unnest(v_requests) q where q.idempotency_key is not null and q.error is null) then
    delete from private.idempotency_keys c
    where (c.key_id, c.idempotency_key) in (
      select o.key_id, o.idempotency_key from private.idempotency_keys o
      where o.created_at < now() - interval '24 hours'
      order by o.created_at
      limit 1000
    );
  end if;

  return jsonb_build_object('received_at', now(), 'results', v_results);
end;
$$;
revoke all on function public.ingest_write_readings(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_readings(jsonb) to service_role;

-- datasource_latest_values: the times in the API's form (text columns, so
-- dropped and created again, with its grants). A private helper would not
-- do here either: the function runs as the calling user, who may execute no
-- private function but those the policies use.
drop function public.datasource_latest_values(uuid);
create function public.datasource_latest_values(p_datasource_id uuid)
returns table (data_key text, value jsonb, observed_at text, received_at text)
language sql
stable
security invoker
set search_path = ''
as $$
  select v.data_key, v.value,
    to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(v.received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  from public.datasource_values v
  where v.datasource_id = p_datasource_id
  order by v.data_key;
$$;
revoke all on function public.datasource_latest_values(uuid) from public, anon, authenticated, service_role;
grant execute on function public.datasource_latest_values(uuid) to authenticated;
