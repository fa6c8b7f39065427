-- The history, partitioned by day of observed_at, with a retention per
-- datasource. Daily, by observed_at: dashboards ask for a time range of one
-- DataKey (one or a few partitions), retention is counted in days of
-- observation, and a backfill of old readings lands where its own time says.
-- Readings outside the created partitions (older than the first, or further
-- ahead than maintain_history creates them) go to the default partition.
-- Whole partitions are dropped once every retention has passed them, which
-- costs nothing per row; a datasource with a shorter retention than the
-- longest has its older rows deleted in bounded batches. Why and figures:
-- docs/performance.md, "History".

-- How many days of history each datasource keeps (null: the default, 90), within its workspace's maximum.
alter table public.datasources
  add column history_days integer check (history_days between 1 and 3650);
grant insert (history_days), update (history_days) on table public.datasources to authenticated;
alter table public.workspace_limits
  add column history_days_max integer check (history_days_max between 1 and 3650);

-- The table, rebuilt partitioned with its rows. PostgreSQL 15 has no identity column on a partitioned table: a
-- sequence of its own gives the ids, continuing the old ones.
alter table public.datasource_readings rename to datasource_readings_unpartitioned;
alter sequence public.datasource_readings_id_seq rename to datasource_readings_unpartitioned_id_seq;
alter index public.datasource_readings_key_time_idx rename to datasource_readings_unpartitioned_key_time_idx;
alter index public.datasource_readings_pkey rename to datasource_readings_unpartitioned_pkey;
create sequence public.datasource_readings_id_seq as bigint;
select setval('public.datasource_readings_id_seq', coalesce(max(id), 0) + 1, false)
from public.datasource_readings_unpartitioned;
revoke all on sequence public.datasource_readings_id_seq from public, anon, authenticated;

create table public.datasource_readings (
  id bigint not null default nextval('public.datasource_readings_id_seq'),
  datasource_id uuid not null,
  data_key text not null,
  value jsonb not null,
  observed_at timestamptz not null,
  received_at timestamptz not null,
  primary key (id, observed_at)
) partition by range (observed_at);
alter sequence public.datasource_readings_id_seq owned by public.datasource_readings.id;
-- The partitions live in `private`: reached only through the table, whose policy applies to them (their own row
-- level security, on and without a policy, refuses any other way in).
create table private.datasource_readings_default partition of public.datasource_readings default;
alter table private.datasource_readings_default enable row level security;
revoke all on table private.datasource_readings_default from public, anon, authenticated, service_role;
create index datasource_readings_key_time_idx
  on public.datasource_readings (datasource_id, data_key, observed_at desc);

alter table public.datasource_readings enable row level security;
revoke all on table public.datasource_readings from anon, authenticated, service_role;
grant select on table public.datasource_readings to authenticated, service_role;
-- Members see the history of their datasources.
create policy datasource_readings_select_members on public.datasource_readings
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- The retention that applies to each datasource, in days.
create function private.history_days(p_datasource_history_days integer, p_workspace_max integer)
returns integer
language sql
immutable
set search_path = ''
as $$
  select least(coalesce(p_datasource_history_days, 90), coalesce(p_workspace_max, 3650));
$$;
revoke all on function private.history_days(integer, integer) from public;

-- The day partition of `p_day` (`private.datasource_readings_yYYYYmMMdDD`), created when missing. Rows of that day in
-- the default partition are moved into it first (attaching checks the default holds none).
create function private.create_history_partition(p_day date)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_name text := format('datasource_readings_%s', to_char(p_day, '"y"YYYY"m"MM"d"DD'));
  v_from timestamptz := p_day::timestamp at time zone 'UTC';
  v_to timestamptz := (p_day + 1)::timestamp at time zone 'UTC';
begin
  if to_regclass('private.' || v_name) is not null then
    return false;
  end if;
  execute format('create table private.%I (like public.datasource_readings including defaults including constraints)',
    v_name);
  execute format('alter table private.%I enable row level security', v_name);
  execute format('revoke all on table private.%I from public, anon, authenticated, service_role', v_name);
  execute format('with moved as (delete from private.datasource_readings_default
      where observed_at >= %L and observed_at < %L returning *) insert into private.%I select * from moved',
    v_from, v_to, v_name);
  execute format('alter table public.datasource_readings attach partition private.%I for values from (%L) to (%L)',
    v_name, v_from, v_to);
  return true;
end;
$$;
revoke all on function private.create_history_partition(date) from public;

-- History upkeep, safe to run at any time and twice: creates the day partitions from yesterday to a week ahead,
-- drops the day partitions that every retention has passed, and deletes at most `p_batch` older rows of
-- datasources whose retention is shorter than the longest (and of the default partition). `p_now` is the time
-- it acts at (tests move it). Returns what it did: `{created, dropped, deleted}`.
create function private.maintain_history(p_now timestamptz default now(), p_batch integer default 10000)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_today date := (p_now at time zone 'UTC')::date;
  v_longest integer;
  v_created integer := 0;
  v_dropped integer := 0;
  v_deleted integer := 0;
  v_partition record;
  v_datasource record;
  v_n integer;
begin
  for i in -1 .. 7 loop
    if private.create_history_partition(v_today + i) then
      v_created := v_created + 1;
    end if;
  end loop;

  -- The longest retention of any datasource: what no partition may be dropped before.
  select coalesce(max(private.history_days(d.history_days, w.history_days_max)), 90) into v_longest
  from public.datasources d left join public.workspace_limits w on w.workspace_id = d.workspace_id;

  for v_partition in
    select c.relname as name
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.datasource_readings'::regclass
      and c.relname ~ '^datasource_readings_y\d{4}m\d{2}d\d{2}$'
      and to_date(substr(c.relname, 21), '"y"YYYY"m"MM"d"DD') + 1 <= v_today - v_longest
  loop
    execute format('drop table private.%I', v_partition.name);
    v_dropped := v_dropped + 1;
  end loop;

  -- Rows past a shorter retention, and rows of the default partition past the longest, in bounded batches.
  for v_datasource in
    select d.id, p_now - make_interval(days => private.history_days(d.history_days, w.history_days_max)) as cutoff
    from public.datasources d left join public.workspace_limits w on w.workspace_id = d.workspace_id
    where private.history_days(d.history_days, w.history_days_max) < v_longest
  loop
    exit when v_deleted >= p_batch;
    delete from public.datasource_readings r
    using (
      select x.id, x.observed_at from public.datasource_readings x
      where x.datasource_id = v_datasource.id and x.observed_at < v_datasource.cutoff
      limit p_batch - v_deleted
    ) old
    where r.id = old.id and r.observed_at = old.observed_at;
    get diagnostics v_n = row_count;
    v_deleted := v_deleted + v_n;
  end loop;
  if v_deleted < p_batch then
    delete from private.datasource_readings_default r
    using (
      select x.id, x.observed_at from private.datasource_readings_default x
      where x.observed_at < p_now - make_interval(days => v_longest)
      limit p_batch - v_deleted
    ) old
    where r.id = old.id and r.observed_at = old.observed_at;
    get diagnostics v_n = row_count;
    v_deleted := v_deleted + v_n;
  end if;

  return jsonb_build_object('created', v_created, 'dropped', v_dropped, 'deleted', v_deleted);
end;
$$;
revoke all on function private.maintain_history(timestamptz, integer) from public;

-- The partitions for now, then the rows.
select private.maintain_history();
insert into public.datasource_readings (id, datasource_id, data_key, value, observed_at, received_at)
select id, datasource_id, data_key, value, observed_at, received_at from public.datasource_readings_unpartitioned;
drop table public.datasource_readings_unpartitioned;

-- On Supabase, pg_cron runs the upkeep every hour; where pg_cron is not installed, say so.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: run select private.maintain_history() daily, or enable pg_cron and '
      'run this migration''s cron.schedule';
    return;
  end if;
  perform cron.schedule('ingest-maintain-history', '17 * * * *', 'select private.maintain_history()');
end;
$$;
