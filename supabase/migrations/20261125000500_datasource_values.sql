-- The values devices push: the latest per DataKey, and the history.

-- The latest value of each DataKey: what dashboards show. Written only by
-- ingest_write, which never lets an older observation replace a newer one.
-- Every row is updated at the ingest rate: free space on each page keeps those
-- updates HOT (no index change, less WAL).
create table public.datasource_values (
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  data_key text not null,
  value jsonb not null,
  observed_at timestamptz not null,
  received_at timestamptz not null,
  primary key (datasource_id, data_key)
) with (fillfactor = 50);

-- Every accepted value, for line charts and audits, kept when the
-- datasource's keep_history is on. Rows arrive at the ingest rate, written
-- only by ingest_write and ingest_write_batch once they hold a lock on the
-- datasource row: a foreign key would add a lookup and a row lock on
-- datasources to every insert, so a trigger on datasources deletes the history
-- of deleted datasources instead of `on delete cascade`.
create table public.datasource_readings (
  id bigint generated always as identity primary key,
  datasource_id uuid not null,
  data_key text not null,
  value jsonb not null,
  observed_at timestamptz not null,
  received_at timestamptz not null
);
create index datasource_readings_key_time_idx
  on public.datasource_readings (datasource_id, data_key, observed_at desc);

-- What `on delete cascade` would do: deleting datasources (or their workspace)
-- deletes their history, in the same transaction.
create function private.delete_datasource_readings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from public.datasource_readings r using deleted d where r.datasource_id = d.id;
  return null;
end;
$$;
revoke all on function private.delete_datasource_readings() from public;

create trigger datasources_delete_readings
after delete on public.datasources
referencing old table as deleted
for each statement execute function private.delete_datasource_readings();

alter table public.datasource_values enable row level security;
alter table public.datasource_readings enable row level security;

-- Members read values; nobody but ingest_write (security definer) writes them.
revoke all on table public.datasource_values, public.datasource_readings from anon, authenticated, service_role;
grant select on table public.datasource_values, public.datasource_readings to authenticated, service_role;

-- Members see the latest values of their datasources.
create policy datasource_values_select_members on public.datasource_values
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- Members see the history of their datasources.
create policy datasource_readings_select_members on public.datasource_readings
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));
