-- Realtime within Supabase's quotas. Supabase meters Realtime messages per
-- second per project and limits a broadcast's size, and a twin dashboard
-- needs the newest values, not every one. So each datasource sends at most
-- `broadcasts_per_second` broadcasts a second (0: one per commit). A commit
-- over that budget sends nothing and leaves its DataKeys pending on the
-- datasource row, which the write has locked already; the next broadcast,
-- from a later commit or from a flush once the interval has passed, carries
-- every pending DataKey with its newest value: a subscriber ends in the state
-- of datasource_latest_values(). How the trailing edge is guaranteed, the
-- project budget, and figures: docs/realtime.md, "The broadcast budget".

alter table public.datasources
  add column broadcasts_per_second smallint not null default 4 check (broadcasts_per_second between 0 and 50),
  -- When its last broadcast went out, the DataKeys changed since then, and when they must go out.
  add column broadcast_sent_at timestamptz,
  add column broadcast_pending text[] not null default '{}',
  add column broadcast_due_at timestamptz;
grant insert (broadcasts_per_second), update (broadcasts_per_second) on table public.datasources to authenticated;

-- What the flush looks for. Only holding and sending change broadcast_due_at, so the other updates of the row
-- (last_ingested_at, pending DataKeys) stay HOT.
create index datasources_broadcast_due_idx on public.datasources (broadcast_due_at)
where broadcast_due_at is not null;

-- How many datasources broadcast lately, counted at most once a second by the flush: the project budget's
-- share per datasource (one row, read by each commit, written once a second).
create table private.realtime_activity (
  singleton boolean primary key default true check (singleton),
  active_datasources integer not null default 0,
  counted_at timestamptz not null default '-infinity'
);
alter table private.realtime_activity enable row level security;
revoke all on table private.realtime_activity from public, anon, authenticated, service_role;
insert into private.realtime_activity default values;

-- The function's Realtime settings for this transaction (`p_limits` of the write functions):
-- `realtime_messages_per_second` (the project budget, 0: none) and `realtime_max_payload_bytes`.
create function private.use_realtime_settings(p_settings jsonb)
returns void
language sql
volatile
set search_path = ''
as $$
  select set_config('ingest.realtime_messages_per_second',
      coalesce(p_settings ->> 'realtime_messages_per_second', ''), true),
    set_config('ingest.realtime_max_payload_bytes', coalesce(p_settings ->> 'realtime_max_payload_bytes', ''), true);
$$;
revoke all on function private.use_realtime_settings(jsonb) from public;

-- The least time between two broadcasts of a datasource: its own budget, or its share of the project's budget
-- when that is less (every active datasource gets the same share).
create function private.broadcast_interval(p_per_second smallint)
returns interval
language sql
stable
set search_path = ''
as $$
  select make_interval(secs => greatest(
    1.0 / p_per_second,
    coalesce((select a.active_datasources from private.realtime_activity a)
      / nullif(nullif(current_setting('ingest.realtime_messages_per_second', true), '')::numeric, 0), 0)
  ));
$$;
revoke all on function private.broadcast_interval(smallint) from public;

-- Sends one `values` broadcast (realtime.send). Its payload is `{datasource_id, observed_at, received_at,
-- values, observed_at_by_key?}`; when the values are larger than the configured size (default 200,000 bytes,
-- below the Free plan's 256 KB), `values` is left out and `values_omitted: true` says to read them.
create function private.send_values(
  p_datasource_id uuid, p_values jsonb, p_observed_at_by_key jsonb, p_observed_at text, p_received_at text
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_payload jsonb := jsonb_build_object(
    'datasource_id', p_datasource_id,
    'observed_at', p_observed_at,
    'received_at', p_received_at,
    'values', p_values
  );
begin
  if p_observed_at_by_key is not null then
    v_payload := v_payload || jsonb_build_object('observed_at_by_key', p_observed_at_by_key);
  end if;
  if octet_length(p_values::text)
      > coalesce(nullif(current_setting('ingest.realtime_max_payload_bytes', true), '')::int, 200000) then
    v_payload := (v_payload - 'values') || jsonb_build_object('values_omitted', true,
      'observed_at_by_key', coalesce(p_observed_at_by_key, (
        select jsonb_object_agg(k, p_observed_at) from jsonb_object_keys(p_values) k
      )));
  end if;
  perform realtime.send(v_payload, 'values', 'datasource:' || p_datasource_id::text, true);
end;
$$;
revoke all on function private.send_values(uuid, jsonb, jsonb, text, text) from public;

-- A commit's broadcast for one datasource, whose row the caller has locked: sent now with the pending
-- DataKeys' newest values added when the datasource's interval has passed, else its DataKeys are left
-- pending until the next broadcast. Returns whether it was sent.
create function private.broadcast_values(
  p_datasource_id uuid, p_values jsonb, p_observed_at_by_key jsonb, p_observed_at text, p_received_at text
)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_budget smallint;
  v_sent_at timestamptz;
  v_pending text[];
  v_interval interval;
  v_more jsonb;
  v_more_times jsonb;
  v_more_latest text;
begin
  select d.broadcasts_per_second, d.broadcast_sent_at, d.broadcast_pending into v_budget, v_sent_at, v_pending
  from public.datasources d where d.id = p_datasource_id;
  if v_budget = 0 and cardinality(v_pending) = 0 then
    perform private.send_values(p_datasource_id, p_values, p_observed_at_by_key, p_observed_at, p_received_at);
    return true;
  end if;
  v_interval := private.broadcast_interval(greatest(v_budget, 1)::smallint);
  if v_budget = 0 or v_sent_at is null or now() >= v_sent_at + v_interval then
    -- The pending DataKeys this commit did not change, with their stored newest values.
    select jsonb_object_agg(v.data_key, v.value),
      jsonb_object_agg(v.data_key, to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(v.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    into v_more, v_more_times, v_more_latest
    from public.datasource_values v
    where cardinality(v_pending) > 0
      and v.datasource_id = p_datasource_id and v.data_key = any (v_pending) and not p_values ? v.data_key;
    if v_more is not null then
      p_observed_at_by_key := coalesce(p_observed_at_by_key,
        (select jsonb_object_agg(k, p_observed_at) from jsonb_object_keys(p_values) k)) || v_more_times;
      p_values := p_values || v_more;
      p_observed_at := greatest(p_observed_at, v_more_latest);
    end if;
    perform private.send_values(p_datasource_id, p_values, p_observed_at_by_key, p_observed_at, p_received_at);
    update public.datasources d
    set broadcast_sent_at = now(), broadcast_pending = '{}', broadcast_due_at = null
    where d.id = p_datasource_id;
    return true;
  end if;
  update public.datasources d
  set broadcast_pending = array(
      select distinct k from unnest(d.broadcast_pending || array(select jsonb_object_keys(p_values))) k order by k
    ),
    broadcast_due_at = coalesce(d.broadcast_due_at, d.broadcast_sent_at + v_interval)
  where d.id = p_datasource_id;
  return false;
end;
$$;
revoke all on function private.broadcast_values(uuid, jsonb, jsonb, text, text) from public;

-- Sends the pending broadcasts that are due (at most p_limit, oldest first; rows another transaction holds are
-- left to it), and counts the active datasources for the project budget at most once a second. Returns the
-- seconds until the next pending broadcast is due, null when none is pending. Run by pg_cron every second on
-- Supabase, by the function after a commit, by deno task dev's loop; running it twice sends once.
create function private.flush_broadcasts(p_limit integer default 1000)
returns double precision
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_ds record;
  v_values jsonb;
  v_times jsonb;
  v_observed_at text;
  v_received_at text;
begin
  update private.realtime_activity a
  set active_datasources = (
      select count(*) from public.datasources d
      where d.broadcast_sent_at > now() - interval '2 seconds' or d.broadcast_due_at is not null
    ),
    counted_at = now()
  where a.counted_at < now() - interval '1 second';

  for v_ds in
    select d.id, d.broadcast_pending from public.datasources d
    where d.broadcast_due_at <= now()
    order by d.broadcast_due_at
    limit p_limit
    for no key update skip locked
  loop
    select jsonb_object_agg(v.data_key, v.value),
      jsonb_object_agg(v.data_key, to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(v.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      to_char(max(v.received_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    into v_values, v_times, v_observed_at, v_received_at
    from public.datasource_values v
    where v.datasource_id = v_ds.id and v.data_key = any (v_ds.broadcast_pending);
    if v_values is not null then
      perform private.send_values(v_ds.id, v_values, v_times, v_observed_at, v_received_at);
    end if;
    update public.datasources d
    set broadcast_sent_at = now(), broadcast_pending = '{}', broadcast_due_at = null
    where d.id = v_ds.id;
  end loop;

  return (
    select case when min(d.broadcast_due_at) is not null
      then greatest(extract(epoch from min(d.broadcast_due_at) - clock_timestamp()), 0)::float8 end
    from public.datasources d where d.broadcast_due_at is not null
  );
end;
$$;
revoke all on function private.flush_broadcasts(integer) from public;

-- The function's flush, with its Realtime settings (`p_limits` as the write functions take it).
create function public.ingest_flush_broadcasts(p_limits jsonb)
returns double precision
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.flush_broadcasts();
end;
$$;
revoke all on function public.ingest_flush_broadcasts(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_flush_broadcasts(jsonb) to service_role;

-- The backstop on Supabase: pg_cron every second (pg_cron 1.5 and later; every minute on older ones). Where
-- pg_cron is not installed, say so: deno task dev and the function flush by themselves.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: pending broadcasts are flushed by the function and deno task dev only; '
      'enable pg_cron and run this migration''s cron.schedule to add the database''s own flush';
    return;
  end if;
  begin
    perform cron.schedule('ingest-flush-broadcasts', '1 seconds', 'select private.flush_broadcasts()');
  exception when others then
    perform cron.schedule('ingest-flush-broadcasts', '* * * * *', 'select private.flush_broadcasts()');
  end;
end;
$$;

-- The write functions, as in 20261204100100_api_time_form.sql but for their broadcasts (private.broadcast_values),
-- and their entry points with limits, as in 20261205100000_ingest_limits.sql but for the Realtime settings.
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
begin
  -- Every cast is guarded: a request whose ids, values or time cannot be read
  -- gets a PTxxx code of its own, never an error that would abort the batch.
  v_requests := array(
    select row(c.ord, c.datasource_id, c.key_id, case when c.error is null then c.vals end, c.observed_at,
      c.keep_history, c.error, c.idempotency_key, c.request_hash, null)::private.batch_request
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
        case when q.error is null and q.datasource_id <> all (v_locked) then 'PT401' else q.error end,
        q.idempotency_key, q.request_hash, null
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
          case when v_found -> q.i::text ->> 'request_hash' = q.request_hash then v_found -> q.i::text -> 'response' end
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

  if v_results is null then
    return jsonb_build_object('received_at', v_received_at);
  end if;
  return jsonb_build_object('received_at', v_received_at, 'results', v_results);
end;
$$;
revoke all on function public.ingest_write_batch(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb) to service_role;

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
  -- scans are off while it is planned. Before, a session that started while
  -- the table was nearly empty kept a plan that scanned it whole for every
  -- request (a third of the throughput lost as it grew, bench:gateway).
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

create or replace function public.ingest_write(
  p_datasource_id uuid,
  p_key_id uuid,
  p_values jsonb,
  p_observed_at timestamptz,
  p_limits jsonb
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_ask jsonb := jsonb_build_array(jsonb_build_object('key_id', p_key_id));
  v_stage jsonb;
  v_answer jsonb;
begin
  perform private.use_realtime_settings(p_limits);
  v_stage := private.ingest_take_limits(v_ask, false, p_limits, 'keys');
  if v_stage is null then
    return public.ingest_write(p_datasource_id, p_key_id, p_values, p_observed_at);
  elsif v_stage -> 'refused' is null then
    -- The workspace has limits: written first, undone when they refuse (see ingest_write_within_limits).
    begin
      v_answer := public.ingest_write(p_datasource_id, p_key_id, p_values, p_observed_at);
      v_stage := private.ingest_take_limits(v_ask, false, p_limits, 'workspaces');
      if v_stage is null then
        return v_answer;
      end if;
      raise exception 'limited' using errcode = 'PT429';
    exception when sqlstate 'PT429' then
      null;
    end;
  end if;
  perform private.ingest_count_refusals(v_stage -> 'refused');
  return jsonb_build_object('code', 'PT429', 'limit', (v_stage -> 'refused' -> '1') - 'datasource_id');
end;
$$;
revoke all on function public.ingest_write(uuid, uuid, jsonb, timestamptz, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write(uuid, uuid, jsonb, timestamptz, jsonb) to service_role;

create or replace function public.ingest_write_batch(p_requests jsonb, p_limits jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.ingest_write_within_limits(p_requests, false, p_limits);
end;
$$;
revoke all on function public.ingest_write_batch(jsonb, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb, jsonb) to service_role;

create or replace function public.ingest_write_readings(p_requests jsonb, p_limits jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.ingest_write_within_limits(p_requests, true, p_limits);
end;
$$;
revoke all on function public.ingest_write_readings(jsonb, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_readings(jsonb, jsonb) to service_role;
