-- Per-key rate limits: the function applies a default token bucket to every
-- key; these columns override it for one key (null keeps the default).

alter table public.datasource_api_keys
  add column rate_limit_per_second integer check (rate_limit_per_second > 0),
  add column rate_limit_burst integer check (rate_limit_burst > 0);

comment on column public.datasource_api_keys.rate_limit_per_second is
  'Requests a second this key may sustain; null: the function''s default (INGEST_RATE_LIMIT_PER_SECOND).';
comment on column public.datasource_api_keys.rate_limit_burst is
  'Requests this key may send at once; null: the function''s default (INGEST_RATE_LIMIT_BURST).';

grant select (rate_limit_per_second, rate_limit_burst) on table public.datasource_api_keys to authenticated, service_role;

-- Owners and editors tune a key's limits; nothing else of a key is writable.
grant update (rate_limit_per_second, rate_limit_burst) on table public.datasource_api_keys to authenticated;

-- Owners and editors of the datasource change its keys' limits.
create policy datasource_api_keys_update_editors on public.datasource_api_keys
for update to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor']))
with check (private.has_datasource_role(datasource_id, array['owner', 'editor']));

-- ingest_resolve_key, now also returning the key's own rate limit.
create or replace function public.ingest_resolve_key(p_key_hash text)
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
