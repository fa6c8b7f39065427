-- History as dashboards read it: "the last 24 hours of motor_stats.rpm in
-- 1-minute averages" in one call, bucketed in the database.

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

drop policy datasource_readings_select_members on public.datasource_readings;
-- Members see the history of their datasources.
create policy datasource_readings_select_members on public.datasource_readings
for select to authenticated
using (datasource_id in (select private.readable_datasources()));

-- A datasource's history between p_from (included) and p_to (excluded) for the DataKeys in p_keys (a DoubleData
-- field as `motor_stats.rpm`). With p_agg avg, min, max, sum or count: one row per DataKey and p_interval bucket
-- (aligned to 1970-01-01T00:00:00Z, so buckets are the same whatever p_from) over the numeric readings; first and
-- last: a bucket's first or last reading whatever its type (a chart's snapshot); none: the readings themselves,
-- oldest first, at most p_limit, each with a cursor to pass as p_cursor for the next ones. At most 1,500 buckets a
-- call (a day at 1 minute is 1,440). Row level security decides what the caller sees (security invoker): others get no rows.
create function public.datasource_history(
  p_datasource_id uuid,
  p_keys text[],
  p_from timestamptz,
  p_to timestamptz,
  p_interval interval default null,
  p_agg text default 'avg',
  p_limit integer default 1000,
  p_cursor text default null
)
returns table (data_key text, "time" text, value jsonb, readings bigint, cursor text)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  v_after_time timestamptz;
  v_after_id bigint;
  v_name text;
  v_key text;
  v_sub_key text;
  -- Whole-hour buckets read the rollups for the complete hours from v_rolled_from to v_rolled_to.
  v_hours boolean := p_agg not in ('first', 'last', 'none') and extract(epoch from p_interval)::numeric % 3600 = 0;
  v_rolled_from timestamptz := date_trunc('hour', p_from) + case when date_trunc('hour', p_from) < p_from
    then interval '1 hour' else interval '0' end;
  v_rolled_to timestamptz := least(date_trunc('hour', p_to),
    date_trunc('hour', (select r.rolled_to from private.history_rollup r)));
begin
  perform private.check_history_arguments(p_keys, p_from, p_to, p_interval, p_agg, p_limit, p_cursor);
  v_hours := coalesce(v_hours and v_rolled_from < v_rolled_to, false);
  if p_agg = 'none' then
    if p_cursor is not null then
      v_after_time := split_part(p_cursor, '|', 1)::timestamptz;
      v_after_id := split_part(p_cursor, '|', 2)::bigint;
    end if;
    return query
    select k.name, to_char(r.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      case when k.sub_key is null then r.value else r.value -> k.sub_key end, 1::bigint,
      to_char(r.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || r.id
    from (
      select n as name, split_part(n, '.', 1) as data_key, nullif(substr(n, length(split_part(n, '.', 1)) + 2), '')
        as sub_key
      from unnest(p_keys) n
    ) k
    join public.datasource_readings r
      on r.datasource_id = p_datasource_id and r.data_key = k.data_key
      and r.observed_at >= p_from and r.observed_at < p_to
    where v_after_time is null or (r.observed_at, r.id) > (v_after_time, v_after_id)
    order by r.observed_at, r.id
    limit p_limit;
    return;
  end if;
  -- One query per DataKey: each is an index range scan of its own (a join with the list of keys sorted every
  -- reading of the range instead).
  foreach v_name in array p_keys loop
    v_key := split_part(v_name, '.', 1);
    v_sub_key := nullif(substr(v_name, length(v_key) + 2), '');
    if p_agg in ('first', 'last') then
      return query
      select distinct on (b.bucket) v_name, to_char(b.bucket at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        case when v_sub_key is null then b.value else b.value -> v_sub_key end, count(*) over (partition by b.bucket),
        null::text
      from (
        select date_bin(p_interval, r.observed_at, timestamptz '1970-01-01 00:00:00+00') as bucket, r.value,
          r.observed_at, r.id
        from public.datasource_readings r
        where r.datasource_id = p_datasource_id and r.data_key = v_key
          and r.observed_at >= p_from and r.observed_at < p_to
      ) b
      order by b.bucket,
        case when p_agg = 'first' then b.observed_at end, case when p_agg = 'last' then b.observed_at end desc,
        case when p_agg = 'first' then b.id end, case when p_agg = 'last' then b.id end desc
      limit p_limit;
    else
      return query
      select v_name, to_char(b.bucket at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        to_jsonb(case p_agg when 'avg' then b.sum / b.numbers when 'min' then b.min when 'max' then b.max
          when 'sum' then b.sum else b.numbers end),
        b.numbers::bigint, null::text
      from (
        select p.bucket, sum(p.sum) as sum, min(p.min) as min, max(p.max) as max, sum(p.numbers) as numbers
        from (
          -- The complete hours the rollups hold, when buckets are whole hours.
          select date_bin(p_interval, h.hour, timestamptz '1970-01-01 00:00:00+00') as bucket, h.sum, h.min, h.max,
            h.readings::float8 as numbers
          from private.history_hours h
          where v_hours and h.datasource_id = p_datasource_id and h.name = v_name
            and h.hour >= v_rolled_from and h.hour < v_rolled_to
          union all
          -- The readings of the rest.
          select date_bin(p_interval, r.observed_at, timestamptz '1970-01-01 00:00:00+00'), sum(x.number),
            min(x.number), max(x.number), count(x.number)::float8
          from public.datasource_readings r
          -- Written out, not a function: a function with its own search_path is called per reading, never inlined.
          cross join lateral (select case when v_sub_key is null then r.value else r.value -> v_sub_key end as value) v
          cross join lateral (select case when jsonb_typeof(v.value) = 'number' then v.value::float8 end as number) x
          -- Two ranges (before and after the rolled-up hours), each an index range scan.
          where r.datasource_id = p_datasource_id and r.data_key = v_key
            and ((r.observed_at >= p_from and r.observed_at < case when v_hours then v_rolled_from else p_to end)
              or (r.observed_at >= case when v_hours then v_rolled_to else p_to end and r.observed_at < p_to))
          group by 1
        ) p
        group by p.bucket
      ) b
      where b.numbers > 0
      order by b.bucket
      limit p_limit;
    end if;
  end loop;
end;
$$;
revoke all on function public.datasource_history(uuid, text[], timestamptz, timestamptz, interval, text, integer, text)
  from public, anon, authenticated, service_role;
grant execute on function public.datasource_history(uuid, text[], timestamptz, timestamptz, interval, text, integer, text)
  to authenticated, service_role;

-- datasource_history's arguments, each error naming the one at fault (SQLSTATE 22023, a 400 through PostgREST).
create function private.check_history_arguments(
  p_keys text[], p_from timestamptz, p_to timestamptz, p_interval interval, p_agg text, p_limit integer,
  p_cursor text
)
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_buckets numeric;
begin
  if p_agg is null or p_agg not in ('avg', 'min', 'max', 'sum', 'count', 'first', 'last', 'none') then
    raise exception 'Cannot read history: p_agg must be one of avg, min, max, sum, count, first, last, none, got %',
      coalesce('"' || p_agg || '"', 'null') using errcode = '22023';
  end if;
  if p_keys is null or cardinality(p_keys) not between 1 and 20 or array_position(p_keys, null) is not null
     or exists (select 1 from unnest(p_keys) k where k = '' or k like '%.%.%') then
    raise exception 'Cannot read history: p_keys must name 1 to 20 DataKeys (a DoubleData field as "motor_stats.rpm")'
      using errcode = '22023';
  end if;
  if p_from is null or p_to is null or p_from >= p_to then
    raise exception 'Cannot read history: p_from must be before p_to' using errcode = '22023';
  end if;
  if p_limit is null or p_limit not between 1 and 10000 then
    raise exception 'Cannot read history: p_limit must be from 1 to 10000, got %', coalesce(p_limit::text, 'null')
      using errcode = '22023';
  end if;
  if p_cursor is not null and (p_agg <> 'none' or p_cursor !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\|\d+$') then
    raise exception 'Cannot read history: p_cursor must be a cursor datasource_history returned with p_agg none'
      using errcode = '22023';
  end if;
  if p_agg = 'none' then
    return;
  end if;
  if p_interval is null or p_interval <= interval '0'
     or extract(year from p_interval) <> 0 or extract(month from p_interval) <> 0 then
    raise exception 'Cannot read history: p_interval must be a positive interval in days, hours, minutes or seconds, got %',
      coalesce(p_interval::text, 'null') using errcode = '22023';
  end if;
  v_buckets := floor(extract(epoch from p_to) / extract(epoch from p_interval))
    - floor(extract(epoch from p_from) / extract(epoch from p_interval)) + 1;
  if v_buckets > 1500 then
    raise exception 'Cannot read history: p_interval % makes % buckets from p_from to p_to; at most 1500 a call',
      p_interval, v_buckets using errcode = '22023';
  end if;
end;
$$;
revoke all on function private.check_history_arguments(text[], timestamptz, timestamptz, interval, text, integer, text)
  from public;
grant execute on function private.check_history_arguments(text[], timestamptz, timestamptz, interval, text, integer,
  text) to authenticated, service_role;

-- Hour rollups: a 30-day read at 1-hour buckets reads 720 rows instead of every reading (docs/performance.md,
-- "History"). Each hour of a DataKey's numbers (and of each numeric field of an object value, as
-- `motor_stats.rpm`): how many, their sum, min and max. private.roll_up_history() recomputes the hours touched by the
-- readings received since its last run (found by a BRIN index on received_at, which costs the writes next to
-- nothing), so a late backfill is counted at the next run; datasource_history() reads the rollups for the complete
-- hours before that run and the readings for the rest.
create index datasource_readings_received_at_idx on public.datasource_readings using brin (received_at);

create table private.history_hours (
  datasource_id uuid not null,
  name text not null,
  hour timestamptz not null,
  readings bigint not null,
  sum double precision not null,
  min double precision not null,
  max double precision not null,
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
-- Returns how many hours it wrote.
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
      select x.datasource_id, x.data_key as name, x.hour, x.value::float8 as n
      from readings x where jsonb_typeof(x.value) = 'number'
      union all
      select x.datasource_id, x.data_key || '.' || f.key, x.hour, f.value::float8
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

-- On Supabase, pg_cron runs it every ten minutes: a backfill shows in hour buckets within ten minutes.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: run select private.roll_up_history() every few minutes, or enable '
      'pg_cron and run this migration''s cron.schedule';
    return;
  end if;
  perform cron.schedule('ingest-roll-up-history', '*/10 * * * *', 'select private.roll_up_history()');
end;
$$;
