-- The two calls the ingest-data Edge Function makes. Only service_role (the
-- function's own credentials) may execute them.

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

-- Stores one request's values in one transaction: the latest value of each
-- DataKey (unless a newer observation is already stored), a history row per
-- value when the datasource keeps history, the datasource's last_ingested_at,
-- the key's last_used_at (at most once a minute), and one Realtime broadcast
-- on `datasource:<id>`. The key is checked again here, so a revocation stops
-- writes at once whatever the function has cached. Errors use PostgREST's
-- PTxxx codes so that both store adapters map them to the same HTTP status.
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

  perform realtime.send(
    jsonb_build_object(
      'datasource_id', p_datasource_id,
      'observed_at', v_observed_at,
      'received_at', v_received_at,
      'values', (select coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
                 from jsonb_each(p_values) e where e.key = any (v_latest))
    ),
    'values',
    'datasource:' || p_datasource_id::text,
    true
  );

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
