-- API keys: how an external system proves it may push into one datasource.

-- A datasource's API key. Only the SHA-256 of the key is stored: the key
-- itself is returned once, by create_datasource_api_key, and never again.
create table public.datasource_api_keys (
  id uuid primary key default gen_random_uuid(),
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  name text not null check (length(trim(name)) between 1 and 200),
  prefix text not null check (prefix ~ '^tw_[0-9a-f]{8}$'),
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  scopes text[] not null default array['ingest:write']
    check (cardinality(scopes) > 0 and scopes <@ array['ingest:write', 'ingest:read']),
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  -- The key's own rate limit; null keeps the function's default (INGEST_RATE_LIMIT_*).
  rate_limit_per_second integer check (rate_limit_per_second > 0),
  rate_limit_burst integer check (rate_limit_burst > 0)
);
create index datasource_api_keys_datasource_id_idx on public.datasource_api_keys (datasource_id);

alter table public.datasource_api_keys enable row level security;

-- Everything but key_hash is readable; keys are only created and revoked
-- through the functions below, never written directly, except their rate limits.
revoke all on table public.datasource_api_keys from anon, authenticated, service_role;
grant select (
  id, datasource_id, name, prefix, scopes, created_at, expires_at, revoked_at, last_used_at,
  rate_limit_per_second, rate_limit_burst
) on table public.datasource_api_keys to authenticated, service_role;
grant update (rate_limit_per_second, rate_limit_burst) on table public.datasource_api_keys to authenticated;

-- Members see their datasources' keys (never their hashes).
create policy datasource_api_keys_select_members on public.datasource_api_keys
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- Owners tune the rate limits of their datasources' keys: a key's own limits
-- are a plan decision (editors still see them).
create policy datasource_api_keys_update_owners on public.datasource_api_keys
for update to authenticated
using (private.has_datasource_role(datasource_id, array['owner']))
with check (private.has_datasource_role(datasource_id, array['owner']));

-- True when the caller may manage keys of the datasource: an owner or editor
-- of its workspace, or the service role (local administration scripts).
create function private.can_manage_datasource_keys(p_datasource_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(auth.jwt() ->> 'role', '') = 'service_role'
    or private.has_datasource_role(p_datasource_id, array['owner', 'editor']);
$$;
revoke all on function private.can_manage_datasource_keys(uuid) from public;

-- Creates a key for a datasource and returns it in plain text, the only time
-- it is ever visible: `tw_` and 64 hex digits carrying 244 random bits (two
-- gen_random_uuid(), from PostgreSQL's strong random source).
create function public.create_datasource_api_key(
  p_datasource_id uuid,
  p_name text,
  p_scopes text[] default array['ingest:write'],
  p_expires_at timestamptz default null
)
returns table (id uuid, api_key text, prefix text, scopes text[], expires_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_key text := 'tw_' || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
begin
  if not private.can_manage_datasource_keys(p_datasource_id) then
    raise exception 'Cannot create API key: not an owner or editor of this datasource'
      using errcode = '42501';
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    raise exception 'Cannot create API key: expires_at must be in the future'
      using errcode = '22023';
  end if;

  return query
  insert into public.datasource_api_keys as k (datasource_id, name, prefix, key_hash, scopes, expires_at)
  values (
    p_datasource_id,
    p_name,
    left(v_key, 11),
    encode(sha256(convert_to(v_key, 'UTF8')), 'hex'),
    p_scopes,
    p_expires_at
  )
  returning k.id, v_key, k.prefix, k.scopes, k.expires_at;
end;
$$;
revoke all on function public.create_datasource_api_key(uuid, text, text[], timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function public.create_datasource_api_key(uuid, text, text[], timestamptz)
  to authenticated, service_role;

-- Revokes a key: from then on the function refuses it. Revoking twice keeps
-- the first revocation time. An unknown key and a key of another workspace
-- give the same error, so callers learn nothing about keys they cannot manage.
create function public.revoke_datasource_api_key(p_key_id uuid)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_datasource_id uuid;
  v_revoked_at timestamptz;
begin
  select k.datasource_id into v_datasource_id
  from public.datasource_api_keys k
  where k.id = p_key_id;

  if v_datasource_id is null or not private.can_manage_datasource_keys(v_datasource_id) then
    raise exception 'Cannot revoke API key: no such key in your workspaces'
      using errcode = 'P0002';
  end if;

  update public.datasource_api_keys k
  set revoked_at = coalesce(k.revoked_at, now())
  where k.id = p_key_id
  returning k.revoked_at into v_revoked_at;
  return v_revoked_at;
end;
$$;
revoke all on function public.revoke_datasource_api_key(uuid) from public, anon, authenticated, service_role;
grant execute on function public.revoke_datasource_api_key(uuid) to authenticated, service_role;
