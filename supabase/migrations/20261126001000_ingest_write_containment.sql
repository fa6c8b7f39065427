-- Containment (issue 12): one request's content never fails another's write.
-- ingest_write_batch used to cast each request's ids and observed_at inside
-- one statement: a single unreadable value (observed_at in year 0, a key id
-- that is not a uuid, a body that is not an array) raised, and the whole
-- group commit, other workspaces' requests included, was answered 500. Every
-- cast is now guarded, and such a request is refused alone with its PTxxx code.
-- ingest_write also refuses an infinite observed_at (it would pin the latest
-- value forever).
-- The write functions are defined here in full; each broadcast they send
-- carries the values that became the latest (none: no message), with times
-- written as the HTTP responses write them (UTC, `Z`, milliseconds, cut):
-- The format, to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
-- (MS cuts to the millisecond), is written out in each function rather than
-- kept in a private helper: a SQL function with its own search_path is never
-- inlined, and such a helper cost 2.6 us a call against 0.4 us for the
-- expression (200,000 calls each); ingest_write_batch formats one time per
-- DataKey and datasource (25 for 64 requests on 8 datasources).

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

-- Unchanged but for the finite observed_at check (see 20261125000600_ingest_functions.sql).

-- ingest_write: one request; no message when nothing became the latest.
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

-- ingest_write_batch: the group commit of concurrent requests, every per-request cast guarded and read once;
-- the message carries observed_at (the newest) and observed_at_by_key.
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
