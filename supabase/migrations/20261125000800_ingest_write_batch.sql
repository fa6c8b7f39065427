-- Group commit: the function coalesces concurrent requests into one call and
-- one commit, instead of one transaction (and one WAL flush) per request.

-- One request of a batch, checked: `error` is the PTxxx code that refuses it.
create type private.ingest_request as (
  i int,
  datasource_id uuid,
  key_id uuid,
  vals jsonb,
  observed_at timestamptz,
  keep_history boolean,
  error text
);

-- Stores several requests' values in one transaction, with set-based
-- statements instead of a loop. The rules are ingest_write's: a request whose
-- key is not valid, lacks ingest:write, whose datasource is disabled (or was
-- deleted meanwhile), or that names an unknown DataKey is refused whole (PTxxx
-- code) and writes nothing; the others are stored together, and the batch
-- commits or fails as one. Datasource rows are locked in id order first, so
-- concurrent batches never deadlock. One Realtime broadcast per datasource of
-- the batch carries the values that became the latest. Returns
-- `{"received_at": ..., "results": [...]}` with one result per request, in
-- order: `{"observed_at": ..., "superseded": [...]}` or `{"code": "PT401"}`;
-- or just `{"received_at": ...}` when every request was stored, observed
-- then, and superseded nothing (the usual case, answered without a result
-- per request to build and parse).
create function public.ingest_write_batch(p_requests jsonb)
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
begin
  v_requests := array(
    select row(
      r.ord::int,
      d.id,
      k.id,
      r.value -> 'values',
      coalesce((r.value ->> 'observed_at')::timestamptz, now()),
      d.keep_history,
      case
        when k.id is null or k.revoked_at is not null or (k.expires_at is not null and k.expires_at <= now())
          then 'PT401'
        when not 'ingest:write' = any (k.scopes) or not d.enabled then 'PT403'
        when jsonb_typeof(r.value -> 'values') is distinct from 'object' or r.value -> 'values' = '{}'::jsonb
          then 'PT400'
        when exists (
          select 1 from jsonb_object_keys(r.value -> 'values') e (key)
          where not exists (select 1 from public.widgets w where w.datasource_id = d.id and w.data_key = e.key)
        ) then 'PT400'
      end
    )::private.ingest_request
    from jsonb_array_elements(p_requests) with ordinality r (value, ord)
    left join public.datasource_api_keys k
      on k.id = (r.value ->> 'key_id')::uuid and k.datasource_id = (r.value ->> 'datasource_id')::uuid
    left join public.datasources d on d.id = k.datasource_id
    order by r.ord
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
    returning v.datasource_id, v.data_key, v.value
  ), sent as (
    select realtime.send(
      jsonb_build_object('datasource_id', u.datasource_id, 'received_at', now(), 'values', jsonb_object_agg(u.data_key, u.value)),
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
    select jsonb_agg(
      case when q.error is not null then jsonb_build_object('code', q.error)
      else jsonb_build_object('observed_at', q.observed_at, 'superseded', case when v_superseded then coalesce((
          select jsonb_agg(v.data_key order by v.data_key collate "C")
          from public.datasource_values v
          where v.datasource_id = q.datasource_id and v.data_key in (select jsonb_object_keys(q.vals))
            and v.observed_at > q.observed_at
        ), '[]'::jsonb) else '[]'::jsonb end)
      end
      order by q.i
    )
    from unnest(v_requests) q
  ));
end;
$$;
revoke all on function public.ingest_write_batch(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb) to service_role;
