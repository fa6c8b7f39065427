-- What a Supabase project provides before any migration runs, for a plain
-- PostgreSQL (tests, benchmarks) or PGlite (dev server). It mirrors
-- Supabase's own definitions of the objects the migrations use and is never
-- part of the migrations: on Supabase these already exist.

-- API roles. PostgREST switches to anon or authenticated per request;
-- service_role is the Edge Function's and bypasses row level security.
-- authenticator is the login role PostgREST and the stand-ins connect as.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit nosuperuser nocreatedb nocreaterole;
  end if;
end
$$;

-- PostgREST's login role (Supabase's is the same, with a password): it has no
-- rights of its own (noinherit) and can only become the three API roles, so a
-- token claiming any other role (postgres, say) is refused by PostgreSQL.
-- The local stand-ins connect as it too.
grant anon, authenticated, service_role to authenticator;

create schema if not exists extensions;
create schema if not exists auth;
create schema if not exists realtime;

-- Supabase's default grants: the API roles use the public schema, and new
-- tables, functions and sequences there are granted to all three.
grant usage on schema public, extensions to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
grant usage on schema auth, realtime to anon, authenticated, service_role;

-- auth.users, reduced to the columns this project touches.
create table if not exists auth.users (
  id uuid primary key,
  email text,
  created_at timestamptz default now()
);

-- The claims of the request's JWT, as PostgREST sets them.
create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

-- The requesting user's id (the JWT's `sub`).
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

-- The requesting role (the JWT's `role`).
create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

-- Broadcast messages that Realtime relays to the subscribers of a topic;
-- RLS policies on it decide who may receive private topics.
create table if not exists realtime.messages (
  id uuid not null default gen_random_uuid(),
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  primary key (id, inserted_at)
);
create index if not exists messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- The topic Realtime is authorizing, set by Realtime before it checks policies.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;

-- Sends a broadcast from the database: Supabase's definition (supabase/realtime,
-- migration 20260605120000_rename_broadcast_send_warning), which also puts the
-- message id into the payload. A failure to send is a warning, never an error
-- of the caller's transaction.
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();

    -- Check if payload has an 'id' key, if not, add the generated UUID
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;

    -- Set the topic configuration
    execute format('SET LOCAL realtime.topic TO %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;
grant execute on function realtime.topic(), realtime.send(jsonb, text, text, boolean) to anon, authenticated, service_role;

-- The publication Realtime's postgres_changes reads from.
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- Not Supabase's: what the local Realtime stand-in (local/realtime_stand_in.ts)
-- needs to deliver broadcasts from the database. Supabase Realtime reads new
-- realtime.messages rows from a logical replication slot; the stand-in LISTENs
-- instead: each new row notifies its id, and PostgreSQL delivers notifications
-- only when the inserting transaction commits, in commit order.
create or replace function realtime.stand_in_notify_message()
returns trigger
language plpgsql
as $$
begin
  perform pg_notify('realtime_stand_in', new.id::text);
  return null;
end;
$$;
drop trigger if exists stand_in_notify_message on realtime.messages;
create trigger stand_in_notify_message
after insert on realtime.messages
for each row when (new.extension = 'broadcast')
execute function realtime.stand_in_notify_message();
