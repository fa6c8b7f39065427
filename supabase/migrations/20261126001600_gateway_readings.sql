-- Gateways (issue 15): requests that carry several readings with their own
-- times, and retries that never store twice (Idempotency-Key).

-- The first answer to each Idempotency-Key of an API key, recorded in the
-- transaction that stored the values: a retry with the same key and body gets
-- this answer again and writes nothing; with another body it is refused.
-- Kept at least 24 hours: ingest_write_readings deletes older records as it
-- goes (no scheduler needed). Only that function reads or writes this table.
create table private.idempotency_keys (
  key_id uuid not null,
  idempotency_key text not null,
  -- SHA-256 (hex) of what the request asked for: its time query and body.
  request_hash text not null,
  -- What ingest_write_readings answered for the request.
  response jsonb not null,
  created_at timestamptz not null default now(),
  primary key (key_id, idempotency_key)
);
-- Rows arrive in created_at order: a BRIN index finds the expired ones at almost no cost per insert.
create index idempotency_keys_created_at_idx on private.idempotency_keys using brin (created_at)
  with (autosummarize = on);
-- No grant to any API role, in a schema PostgREST does not expose: no policy needed.
revoke all on table private.idempotency_keys from public, anon, authenticated, service_role;

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
-- a number, not text, so that reading it costs no parsing: backfills send thousands). A DataKey's latest value is its newest observation,
-- whatever the order the readings arrive in (a tie goes to the later
-- reading); every reading goes to the history when the datasource keeps it.
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
comment on function public.ingest_write_readings(jsonb) is
  'Stores the readings of several requests in one commit, with Idempotency-Keys (service_role only). '
  'Checks keys, scopes, datasources, DataKeys and times; trusts the function for value shapes (see 20261126001500).';
