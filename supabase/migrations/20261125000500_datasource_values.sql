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
-- datasource's keep_history is on.
create table public.datasource_readings (
  id bigint generated always as identity primary key,
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  data_key text not null,
  value jsonb not null,
  observed_at timestamptz not null,
  received_at timestamptz not null
);
create index datasource_readings_key_time_idx
  on public.datasource_readings (datasource_id, data_key, observed_at desc);

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
