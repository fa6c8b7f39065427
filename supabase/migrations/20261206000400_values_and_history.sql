-- The values devices push: the latest per DataKey, and the history,
-- partitioned by day with a retention per datasource and rolled up by hour.

-- The latest value of each DataKey: what dashboards show. Written only by
-- the write functions, which never let an older observation replace a newer
-- one. Every row is updated at the ingest rate: free space on each page keeps
-- those updates HOT (no index change, less WAL).
create table public.datasource_values (
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  data_key text not null,
  value jsonb not null,
  observed_at timestamptz not null,
  received_at timestamptz not null,
  primary key (datasource_id, data_key)
) with (fillfactor = 50);

alter table public.datasource_values enable row level security;
-- Members read values; nobody but the write functions (security definer) writes them.
revoke all on table public.datasource_values from anon, authenticated, service_role;
grant select on table public.datasource_values to authenticated, service_role;

-- Members see the latest values of their datasources.
create policy datasource_values_select_members on public.datasource_values
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- Every accepted value, for line charts and audits, kept when the
-- datasource's keep_history is on. Rows arrive at the ingest rate, written
-- only by the write functions once they hold a lock on the datasource row: a
-- foreign key would add a lookup and a row lock on datasources to every
-- insert, so a trigger on datasources deletes the history of deleted
-- datasources instead of `on delete cascade`.
--
-- Partitioned by day of observed_at: dashboards ask for a time range of one
-- DataKey (one or a few partitions), retention is counted in days of
-- observation, and a backfill of old readings lands where its own time says.
-- Readings outside the created partitions (older than the first, or further
-- ahead than maintain_history creates them) go to the default partition.
-- Whole partitions are dropped once every retention has passed them, which
-- costs nothing per row; a datasource with a shorter retention than the
-- longest has its older rows deleted in bounded batches. Why and figures:
-- docs/performance.md, "History".
--
-- PostgreSQL 15 has no identity column on a partitioned table: a sequence of its own gives the ids.
create sequence public.datasource_readings_id_seq as bigint;
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
-- What private.roll_up_history() finds the readings received since its last run by: a BRIN index costs the
-- writes next to nothing.
create index datasource_readings_received_at_idx on public.datasource_readings using brin (received_at);

-- The datasources the current user may read, for row level security on the history: evaluated once per query
-- (a hashed set), where a per-row membership check would cost more than the row on a long range.
create function private.readable_datasources()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select d.id
  from public.datasources d
  join public.workspace_members m on m.workspace_id = d.workspace_id
  where m.user_id = (select auth.uid());
$$;
revoke all on function private.readable_datasources() from public;
grant execute on function private.readable_datasources() to authenticated;

alter table public.datasource_readings enable row level security;
revoke all on table public.datasource_readings from anon, authenticated, service_role;
grant select on table public.datasource_readings to authenticated, service_role;
-- Members see the history of their datasources.
create policy datasource_readings_select_members on public.datasource_readings
for select to authenticated
using (datasource_id in (select private.readable_datasources()));

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
-- Run first by ..._scheduling.sql (it reads workspace_limits), then hourly by pg_cron or deno task dev.
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

-- Hour rollups: a 30-day read at 1-hour buckets reads 720 rows instead of every reading (docs/performance.md,
-- "History"). Each hour of a DataKey's numbers (and of each numeric field of an object value, as
-- `motor_stats.rpm`): how many, their sum, min and max, as numeric: exact as stored, and a sum past double precision
-- (two readings of 1.7976931348623157e308) neither fails the run nor holds up every other DataKey's rollup. private.roll_up_history() recomputes the hours touched by the
-- readings received since its last run (found by a BRIN index on received_at, which costs the writes next to
-- nothing), so a late backfill is counted at the next run; datasource_history() reads the rollups for the complete
-- hours before that run and the readings for the rest.
create table private.history_hours (
  datasource_id uuid not null,
  name text not null,
  hour timestamptz not null,
  readings bigint not null,
  sum numeric not null,
  min numeric not null,
  max numeric not null,
  primary key (datasource_id, name, hour)
);
alter table private.history_hours enable row level security;
revoke all on table private.history_hours from public, anon, authenticated, service_role;
grant select on table private.history_hours to authenticated, service_role;
-- Members read the rollups of their datasources (datasource_history runs as the caller).
create policy history_hours_select_members on private.history_hours
for select to authenticated
using (datasource_id in (select private.readable_datasources()));

-- Readings received before `rolled_to` are in the rollups.
create table private.history_rollup (
  singleton boolean primary key default true check (singleton),
  rolled_to timestamptz not null default '-infinity'
);
alter table private.history_rollup enable row level security;
revoke all on table private.history_rollup from public, anon, authenticated, service_role;
grant select on table private.history_rollup to authenticated, service_role;
-- Anyone who may read history may know how far the rollups go.
create policy history_rollup_select on private.history_rollup for select to authenticated using (true);
insert into private.history_rollup default values;

-- Recomputes the hours touched by the readings received since the last run, up to a minute before p_now (a write
-- still in flight then has a received_at before it), and deletes the hours past each datasource's retention.
-- Returns how many hours it wrote. Run every ten minutes by pg_cron or deno task dev (..._scheduling.sql).
create function private.roll_up_history(p_now timestamptz default now())
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_from timestamptz;
  v_to timestamptz := p_now - interval '1 minute';
  v_written integer := 0;
begin
  select r.rolled_to into v_from from private.history_rollup r for update;
  if v_to > v_from then
    with touched as (
      select distinct r.datasource_id, r.data_key, date_trunc('hour', r.observed_at) as hour
      from public.datasource_readings r
      where r.received_at > v_from and r.received_at <= v_to
    ), readings as (
      select t.datasource_id, t.data_key, t.hour, r.value
      from touched t
      -- The hour as an equality (a hash join when many hours are touched) and as a range (an index range scan
      -- when few are); a range alone made a join over every pair of readings and hours of a DataKey.
      join public.datasource_readings r
        on r.datasource_id = t.datasource_id and r.data_key = t.data_key
        and date_trunc('hour', r.observed_at) = t.hour
        and r.observed_at >= t.hour and r.observed_at < t.hour + interval '1 hour'
    ), numbers as (
      select x.datasource_id, x.data_key as name, x.hour, x.value::numeric as n
      from readings x where jsonb_typeof(x.value) = 'number'
      union all
      select x.datasource_id, x.data_key || '.' || f.key, x.hour, f.value::numeric
      from readings x
      cross join lateral jsonb_each(case when jsonb_typeof(x.value) = 'object' then x.value end) f
      where jsonb_typeof(f.value) = 'number'
    )
    insert into private.history_hours as h (datasource_id, name, hour, readings, sum, min, max)
    select n.datasource_id, n.name, n.hour, count(*), sum(n.n), min(n.n), max(n.n)
    from numbers n
    group by 1, 2, 3
    on conflict (datasource_id, name, hour) do update
      set readings = excluded.readings, sum = excluded.sum, min = excluded.min, max = excluded.max;
    get diagnostics v_written = row_count;
    update private.history_rollup set rolled_to = v_to;
  end if;

  delete from private.history_hours h
  using public.datasources d
  left join public.workspace_limits w on w.workspace_id = d.workspace_id
  where h.datasource_id = d.id
    and h.hour < p_now - make_interval(days => private.history_days(d.history_days, w.history_days_max));
  delete from private.history_hours h
  where not exists (select 1 from public.datasources d where d.id = h.datasource_id);
  return v_written;
end;
$$;
revoke all on function private.roll_up_history(timestamptz) from public;
