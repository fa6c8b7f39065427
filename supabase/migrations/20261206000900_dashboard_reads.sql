-- What dashboards read, as the signed-in user (security invoker: row level
-- security decides, and anyone else gets nothing): the latest values before
-- live broadcasts apply, the datasources the twin view may watch, and the
-- history bucketed in the database.

-- The dashboards' first read: the latest value of every DataKey of a
-- datasource, before they apply live broadcasts (and again after each
-- reconnect, since Realtime keeps no queue).
-- Security invoker, so that the caller's row level security decides: a member
-- of the datasource's workspace gets its values, anyone else an empty list
-- (the same answer as for a datasource that does not exist). Only signed-in
-- users may call it; the function and service role read the table directly.
-- Times as text in the API's form (UTC, `Z`, milliseconds): a timestamptz column reaches clients as
-- `…123456+00:00`.
create function public.datasource_latest_values(p_datasource_id uuid)
returns table (data_key text, value jsonb, observed_at text, received_at text)
language sql
stable
security invoker
set search_path = ''
as $$
  select v.data_key, v.value,
    to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char(v.received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  from public.datasource_values v
  where v.datasource_id = p_datasource_id
  order by v.data_key;
$$;
revoke all on function public.datasource_latest_values(uuid) from public, anon, authenticated, service_role;
grant execute on function public.datasource_latest_values(uuid) to authenticated;

-- The twin view's first read: which datasources the signed-in user may
-- watch, with the widgets that decide what the 3D scene shows.
-- The datasources of the workspaces the caller is a member of, each with its
-- workspace name and widgets, as one jsonb array (ordered by workspace, then
-- datasource name; widgets by creation, then name). Security invoker: row level security
-- on workspaces, datasources and widgets applies as for any select by the
-- caller, and the membership filter keeps roles that bypass it (service_role)
-- to what a member sees. Called by dashboards as `supabase.rpc("twin_datasources")`.
create function public.twin_datasources()
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(
    jsonb_agg(
      jsonb_build_object(
        'id', d.id,
        'name', d.name,
        'enabled', d.enabled,
        'workspace_id', w.id,
        'workspace_name', w.name,
        'widgets', coalesce((
          select jsonb_agg(
            jsonb_build_object(
              'id', g.id,
              'name', g.name,
              'widget_type', g.widget_type,
              'data_key', g.data_key,
              'settings', g.settings
            )
            order by g.created_at, g.name, g.id
          )
          from public.widgets g
          where g.datasource_id = d.id
        ), '[]'::jsonb)
      )
      order by w.name, d.name, d.id
    ),
    '[]'::jsonb
  )
  from public.datasources d
  join public.workspaces w on w.id = d.workspace_id
  where d.workspace_id in (
    select m.workspace_id from public.workspace_members m where m.user_id = (select auth.uid())
  );
$$;
revoke all on function public.twin_datasources() from public, anon, authenticated, service_role;
grant execute on function public.twin_datasources() to authenticated;

-- History as dashboards read it: "the last 24 hours of motor_stats.rpm in
-- 1-minute averages" in one call, bucketed in the database.
-- A datasource's history between p_from (included) and p_to (excluded) for the DataKeys in p_keys (a DoubleData
-- field as `motor_stats.rpm`). With p_agg avg, min, max, sum or count: one row per DataKey and p_interval bucket
-- (aligned to 1970-01-01T00:00:00Z, so buckets are the same whatever p_from) over the numeric readings; first and
-- last: a bucket's first or last reading whatever its type (a chart's snapshot); none: the readings themselves,
-- oldest first, at most p_limit, each with a cursor to pass as p_cursor for the next ones. At most 1,500 buckets a
-- call (a day at 1 minute is 1,440). Whole-hour buckets read the hour rollups (private.history_hours) for the
-- hours rolled up and the readings for the rest. Row level security decides what the caller sees (security
-- invoker): others get no rows.
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
        case p_agg when 'avg' then to_jsonb((b.sum / b.numbers)::float8) when 'min' then to_jsonb(b.min)
          when 'max' then to_jsonb(b.max) when 'sum' then to_jsonb(b.sum) else to_jsonb(b.numbers) end,
        b.numbers::bigint, null::text
      from (
        select p.bucket, sum(p.sum) as sum, min(p.min) as min, max(p.max) as max, sum(p.numbers) as numbers
        from (
          -- The complete hours the rollups hold, when buckets are whole hours.
          select date_bin(p_interval, h.hour, timestamptz '1970-01-01 00:00:00+00') as bucket, h.sum, h.min, h.max,
            h.readings::numeric as numbers
          from private.history_hours h
          where v_hours and h.datasource_id = p_datasource_id and h.name = v_name
            and h.hour >= v_rolled_from and h.hour < v_rolled_to
          union all
          -- The readings of the rest.
          select date_bin(p_interval, r.observed_at, timestamptz '1970-01-01 00:00:00+00'), sum(x.number),
            min(x.number), max(x.number), count(x.number)::numeric
          from public.datasource_readings r
          -- Written out, not a function: a function with its own search_path is called per reading, never inlined.
          cross join lateral (select case when v_sub_key is null then r.value else r.value -> v_sub_key end as value) v
          cross join lateral (select case when jsonb_typeof(v.value) = 'number' then v.value::numeric end as number) x
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
