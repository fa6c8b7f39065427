-- Limits that hold across every function instance: per API key (requests
-- and readings per second, with a burst) and per workspace (readings per
-- second, per UTC day and per UTC month), checked in the write transaction.
-- The function's in-memory buckets are only a pre-filter: on Supabase each
-- of its isolates has its own, so only the database sees every request.
-- How they are computed and what they cost: docs/api.md#limits-across-instances and
-- docs/performance.md.

-- A workspace's limits (its plan). A missing row or a null column keeps the
-- function's default (INGEST_WORKSPACE_*); 0 means no limit.
create table public.workspace_limits (
  workspace_id uuid primary key references public.workspaces (id) on delete cascade,
  readings_per_second integer check (readings_per_second >= 0),
  readings_burst integer check (readings_burst > 0),
  readings_per_day bigint check (readings_per_day >= 0),
  readings_per_month bigint check (readings_per_month >= 0),
  updated_at timestamptz not null default now(),
  -- The longest history its datasources may keep, in days (null: 3650); see private.history_days.
  history_days_max integer check (history_days_max between 1 and 3650)
);
alter table public.workspace_limits enable row level security;
revoke all on table public.workspace_limits from anon, authenticated, service_role;
grant select on table public.workspace_limits to authenticated, service_role;
grant insert, update, delete on table public.workspace_limits to authenticated, service_role;

-- Owners and editors see their workspace's limits; only owners change them.
create policy workspace_limits_select_editors on public.workspace_limits
for select to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor']));
create policy workspace_limits_insert_owners on public.workspace_limits
for insert to authenticated
with check (private.has_workspace_role(workspace_id, array['owner']));
create policy workspace_limits_update_owners on public.workspace_limits
for update to authenticated
using (private.has_workspace_role(workspace_id, array['owner']))
with check (private.has_workspace_role(workspace_id, array['owner']));
create policy workspace_limits_delete_owners on public.workspace_limits
for delete to authenticated
using (private.has_workspace_role(workspace_id, array['owner']));

-- What a workspace used: its readings bucket (GCRA: the theoretical arrival
-- time, epoch seconds) and its readings of the current UTC day and month.
-- One row per workspace, made with it; members read it, only the write
-- functions change it.
create table public.workspace_usage (
  workspace_id uuid primary key references public.workspaces (id) on delete cascade,
  readings_tat double precision,
  day date not null default (now() at time zone 'UTC')::date,
  day_readings bigint not null default 0,
  month date not null default date_trunc('month', now() at time zone 'UTC')::date,
  month_readings bigint not null default 0
) with (fillfactor = 50); -- room for HOT updates: one per write transaction of the workspace
alter table public.workspace_usage enable row level security;
revoke all on table public.workspace_usage from anon, authenticated, service_role;
grant select on table public.workspace_usage to authenticated, service_role;
create policy workspace_usage_select_members on public.workspace_usage
for select to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor', 'viewer']));

-- A key's request and readings buckets (GCRA, epoch seconds). Unlogged: after
-- a crash the buckets start full, which costs at most one burst; the
-- per-request WAL they would write is not worth more.
create unlogged table private.key_buckets (
  key_id uuid primary key references public.datasource_api_keys (id) on delete cascade,
  requests_tat double precision,
  readings_tat double precision
) with (fillfactor = 50);
alter table private.key_buckets enable row level security;
revoke all on table private.key_buckets from public, anon, authenticated, service_role;

-- Requests refused by a limit, per datasource, limit and hour: what a
-- dashboard shows as "throttled N times in the last hour". Members read it.
create table public.ingest_throttles (
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  hour timestamptz not null,
  limit_name text not null
    check (limit_name in ('key_requests', 'key_readings', 'workspace_readings', 'workspace_day', 'workspace_month')),
  refused integer not null,
  primary key (datasource_id, hour, limit_name)
);
alter table public.ingest_throttles enable row level security;
revoke all on table public.ingest_throttles from anon, authenticated, service_role;
grant select on table public.ingest_throttles to authenticated, service_role;
create policy ingest_throttles_select_members on public.ingest_throttles
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- Every workspace and key gets its usage row when it is made, so the write
-- path only locks and updates rows, never inserts them.
create function private.add_workspace_usage()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.workspace_usage (workspace_id) values (new.id) on conflict do nothing;
  return null;
end;
$$;
revoke all on function private.add_workspace_usage() from public;
create trigger workspaces_add_usage after insert on public.workspaces
for each row execute function private.add_workspace_usage();

create function private.add_key_buckets()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.key_buckets (key_id) values (new.id) on conflict do nothing;
  return null;
end;
$$;
revoke all on function private.add_key_buckets() from public;
create trigger datasource_api_keys_add_buckets after insert on public.datasource_api_keys
for each row execute function private.add_key_buckets();

-- The limits that apply to each ask, from the key's and workspace's own
-- settings, else `p_defaults` (the function's settings). A limit of 0 is
-- none. A key with its own request limit gets a readings bucket scaled like
-- the defaults (as handler.ts's readingsLimit), never smaller than one full
-- request (max_readings).
create function private.ingest_limits_of(p_key_ids uuid[], p_defaults jsonb)
returns table (
  key_id uuid, datasource_id uuid, workspace_id uuid,
  requests_per_second double precision, requests_burst double precision,
  readings_per_second double precision, readings_burst double precision,
  ws_per_second double precision, ws_burst double precision, ws_per_day bigint, ws_per_month bigint
)
language plpgsql
stable
set search_path = ''
-- plpgsql with a generic plan: the plan is made once per session (as a sql function, or with custom
-- plans, it was made again at every call: about 100 us).
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
  select k.id, d.id, d.workspace_id,
    coalesce(k.rate_limit_per_second, (p_defaults ->> 'requests_per_second')::int, 0)::float8,
    coalesce(k.rate_limit_burst, (p_defaults ->> 'requests_burst')::int, 1)::float8,
    case
      when k.rate_limit_per_second is null or coalesce((p_defaults ->> 'requests_per_second')::int, 0) <= 0
        then coalesce((p_defaults ->> 'readings_per_second')::int, 0)
      else ceil(k.rate_limit_per_second::numeric * (p_defaults ->> 'readings_per_second')::int
        / (p_defaults ->> 'requests_per_second')::int)
    end::float8,
    greatest(
      case when k.rate_limit_burst is null then coalesce((p_defaults ->> 'readings_burst')::int, 1)
        else ceil(k.rate_limit_burst::numeric * (p_defaults ->> 'readings_burst')::int
          / greatest((p_defaults ->> 'requests_burst')::int, 1)) end,
      coalesce((p_defaults ->> 'max_readings')::int, 1)
    )::float8,
    coalesce(w.readings_per_second, (p_defaults ->> 'workspace_readings_per_second')::int, 0)::float8,
    -- A workspace's burst: its own, else the setting, else its rate; never less than one full request.
    greatest(coalesce(w.readings_burst, nullif((p_defaults ->> 'workspace_readings_burst')::int, 0),
      coalesce(w.readings_per_second, (p_defaults ->> 'workspace_readings_per_second')::int, 0)),
      coalesce((p_defaults ->> 'max_readings')::int, 1))::float8,
    coalesce(w.readings_per_day, (p_defaults ->> 'workspace_readings_per_day')::bigint, 0),
    coalesce(w.readings_per_month, (p_defaults ->> 'workspace_readings_per_month')::bigint, 0)
  from public.datasource_api_keys k
  join public.datasources d on d.id = k.datasource_id
  left join public.workspace_limits w on w.workspace_id = d.workspace_id
  where k.id = any (p_key_ids);
end;
$$;
revoke all on function private.ingest_limits_of(uuid[], jsonb) from public;

-- Takes the limits of a write call's requests (`p_requests`, as the write
-- function reads them; `p_readings`: each has a `readings` array, else each
-- is one reading), in the caller's transaction, in two stages. `keys`, before
-- the write: 1 from each request's key's request bucket and its readings
-- from the key's readings bucket. `workspaces`, after the write: its
-- readings from the workspace's bucket, day and month, for workspaces with a
-- limit of that kind (their row is shared by all their datasources' writes,
-- so it is locked only for the end of the transaction). A request is
-- admitted when every limit of the stage has room for it, and then takes
-- from each; a refused one takes from none.
--
-- Returns null when all are admitted (and, at `keys`, no workspace has a
-- limit), else `{refused?: {<1-based index>: refusal}, workspaces?:
-- <the workspaces stage is needed>}`; a refusal names the limit as the 429
-- describes it (`{code, limit, limit_value, per_second, remaining, reset_s,
-- retry_after_s, datasource_id}`).
--
-- Cost: one pass over the requests grouped by key, one row lock and update
-- per key and per limited workspace; requests are looked at one by one only
-- when a group does not fit whole. Rows are locked in a fixed order (key
-- buckets by id, the caller's datasources, workspaces by id), so concurrent
-- calls never deadlock.
create function private.ingest_take_limits(p_requests jsonb, p_readings boolean, p_defaults jsonb, p_stage text)
returns jsonb
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_now double precision;
  v_day date := (now() at time zone 'UTC')::date;
  v_month date := date_trunc('month', now() at time zone 'UTC')::date;
  v_keys uuid[];
  v_requests double precision[];
  v_readings double precision[];
  v_row record;
  -- per key (index in v_keys): its workspace, limits and bucket state
  k_ws uuid[]; k_ds uuid[];
  k_rps double precision[]; k_rb double precision[]; k_dps double precision[]; k_db double precision[];
  k_rtat double precision[]; k_dtat double precision[];
  kw_ps double precision[]; kw_b double precision[]; kw_day bigint[]; kw_month bigint[];
  -- per limited workspace (index in v_ws)
  v_ws uuid[];
  w_ps double precision[]; w_b double precision[]; w_day bigint[]; w_month bigint[];
  w_tat double precision[]; w_day_used bigint[]; w_month_used bigint[]; w_want double precision[];
  v_k int; v_w int; v_n double precision;
  v_new_r double precision; v_new_d double precision; v_new_w double precision;
  v_fits boolean := true;
  v_refusal jsonb;
  v_refused jsonb := '{}';
  v_any boolean := false;
  v_ws_limited boolean := false;
begin
  -- The call's requests and readings per key (ids that cannot be read find no key: the write refuses them).
  select array_agg(g.key_id order by g.key_id), array_agg(g.requests order by g.key_id),
    array_agg(g.readings order by g.key_id)
  into v_keys, v_requests, v_readings
  from (
    select (r.key_text)::uuid as key_id, r.requests, r.readings
    from (
      select e ->> 'key_id' as key_text, count(*)::float8 as requests,
        sum(case when p_readings and jsonb_typeof(e -> 'readings') = 'array'
          then greatest(jsonb_array_length(e -> 'readings'), 1) else 1 end)::float8 as readings
      from jsonb_array_elements(case when jsonb_typeof(p_requests) = 'array' then p_requests else '[]' end) e
      group by 1
    ) r
    where r.key_text ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
  ) g;
  if v_keys is null then
    return null;
  end if;

  -- The limits of each key and its workspace; none at all: nothing to lock or count.
  for v_row in select * from private.ingest_limits_of(v_keys, p_defaults) loop
    v_k := array_position(v_keys, v_row.key_id);
    k_ws[v_k] := v_row.workspace_id; k_ds[v_k] := v_row.datasource_id;
    k_rps[v_k] := case when p_stage = 'keys' then v_row.requests_per_second else 0 end;
    k_rb[v_k] := v_row.requests_burst;
    k_dps[v_k] := case when p_stage = 'keys' then v_row.readings_per_second else 0 end;
    k_db[v_k] := v_row.readings_burst;
    kw_ps[v_k] := v_row.ws_per_second; kw_b[v_k] := v_row.ws_burst;
    kw_day[v_k] := v_row.ws_per_day; kw_month[v_k] := v_row.ws_per_month;
    v_any := v_any or k_rps[v_k] > 0 or k_dps[v_k] > 0;
    v_ws_limited := v_ws_limited or v_row.ws_per_second > 0 or v_row.ws_per_day > 0 or v_row.ws_per_month > 0;
  end loop;
  if p_stage = 'keys' and not v_any then
    return case when v_ws_limited then jsonb_build_object('workspaces', true) end;
  elsif p_stage = 'workspaces' and not v_ws_limited then
    return null;
  end if;
  -- Workspaces with a limit of their own kind; the others are not locked at all.
  v_ws := array(
    select distinct k_ws[i] from generate_subscripts(v_keys, 1) i
    where p_stage = 'workspaces' and k_ws[i] is not null and (kw_ps[i] > 0 or kw_day[i] > 0 or kw_month[i] > 0)
    order by 1
  );
  for v_k in 1 .. cardinality(v_keys) loop
    v_w := array_position(v_ws, k_ws[v_k]);
    if v_w is not null then
      w_ps[v_w] := kw_ps[v_k]; w_b[v_w] := kw_b[v_k]; w_day[v_w] := kw_day[v_k]; w_month[v_w] := kw_month[v_k];
      w_day_used[v_w] := 0; w_month_used[v_w] := 0;
      w_want[v_w] := coalesce(w_want[v_w], 0) + v_readings[v_k];
    end if;
  end loop;

  -- Lock the state rows in a fixed order (keys, then workspaces, each by id) and read them.
  for v_row in
    select b.key_id, b.requests_tat, b.readings_tat from private.key_buckets b
    where p_stage = 'keys' and b.key_id = any (v_keys) order by b.key_id for update
  loop
    v_k := array_position(v_keys, v_row.key_id);
    k_rtat[v_k] := v_row.requests_tat; k_dtat[v_k] := v_row.readings_tat;
  end loop;
  if cardinality(v_ws) > 0 then
    for v_row in
      select u.workspace_id, u.readings_tat, u.day, u.day_readings, u.month, u.month_readings
      from public.workspace_usage u where u.workspace_id = any (v_ws) order by u.workspace_id for update
    loop
      v_w := array_position(v_ws, v_row.workspace_id);
      w_tat[v_w] := v_row.readings_tat;
      w_day_used[v_w] := case when v_row.day = v_day then v_row.day_readings else 0 end;
      w_month_used[v_w] := case when v_row.month = v_month then v_row.month_readings else 0 end;
    end loop;
  end if;

  -- Now, once the rows are ours: the transaction's start (now()) may be well before a lock that another
  -- call held, and that call moved the buckets to its own now.
  v_now := extract(epoch from clock_timestamp());

  -- The usual case: each key's and each workspace's whole share fits (GCRA: the theoretical arrival time
  -- after it is at most burst/rate seconds ahead of now). Then every request is admitted at once. Times are epoch
  -- seconds, whose double precision rounds by up to about 2e-7 s: every comparison allows 1e-6 s.
  for v_k in 1 .. cardinality(v_keys) loop
    exit when not v_fits;
    continue when k_ws[v_k] is null;
    v_fits := (k_rps[v_k] <= 0 or greatest(coalesce(k_rtat[v_k], v_now), v_now) + v_requests[v_k] / k_rps[v_k]
        - v_now <= k_rb[v_k] / k_rps[v_k] + 1e-6)
      and (k_dps[v_k] <= 0 or greatest(coalesce(k_dtat[v_k], v_now), v_now) + v_readings[v_k] / k_dps[v_k]
        - v_now <= k_db[v_k] / k_dps[v_k] + 1e-6);
  end loop;
  for v_w in 1 .. coalesce(cardinality(v_ws), 0) loop
    exit when not v_fits;
    v_fits := (w_ps[v_w] <= 0 or greatest(coalesce(w_tat[v_w], v_now), v_now) + w_want[v_w] / w_ps[v_w]
        - v_now <= w_b[v_w] / w_ps[v_w] + 1e-6)
      and (w_day[v_w] <= 0 or w_day_used[v_w] + w_want[v_w] <= w_day[v_w])
      and (w_month[v_w] <= 0 or w_month_used[v_w] + w_want[v_w] <= w_month[v_w]);
  end loop;
  if v_fits then
    for v_k in 1 .. cardinality(v_keys) loop
      if k_rps[v_k] > 0 then k_rtat[v_k] := greatest(coalesce(k_rtat[v_k], v_now), v_now) + v_requests[v_k] / k_rps[v_k]; end if;
      if k_dps[v_k] > 0 then k_dtat[v_k] := greatest(coalesce(k_dtat[v_k], v_now), v_now) + v_readings[v_k] / k_dps[v_k]; end if;
    end loop;
    for v_w in 1 .. coalesce(cardinality(v_ws), 0) loop
      if w_ps[v_w] > 0 then w_tat[v_w] := greatest(coalesce(w_tat[v_w], v_now), v_now) + w_want[v_w] / w_ps[v_w]; end if;
      w_day_used[v_w] := w_day_used[v_w] + w_want[v_w];
      w_month_used[v_w] := w_month_used[v_w] + w_want[v_w];
    end loop;
  else
    -- Some share does not fit: the requests one by one, in order.
    for v_row in
      select e.ord::int as i, e.value ->> 'key_id' as key_text,
        case when p_readings and jsonb_typeof(e.value -> 'readings') = 'array'
          then greatest(jsonb_array_length(e.value -> 'readings'), 1) else 1 end::float8 as n
      from jsonb_array_elements(p_requests) with ordinality e (value, ord)
    loop
      v_k := null;
      if v_row.key_text ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
        v_k := array_position(v_keys, v_row.key_text::uuid);
      end if;
      continue when v_k is null or k_ws[v_k] is null; -- an unknown key: the write refuses it (PT401)
      v_w := array_position(v_ws, k_ws[v_k]);
      v_n := v_row.n;
      v_refusal := null;
      v_new_r := greatest(coalesce(k_rtat[v_k], v_now), v_now) + 1 / nullif(k_rps[v_k], 0);
      v_new_d := greatest(coalesce(k_dtat[v_k], v_now), v_now) + least(v_n, k_db[v_k]) / nullif(k_dps[v_k], 0);
      if k_rps[v_k] > 0 and v_new_r - v_now > k_rb[v_k] / k_rps[v_k] + 1e-6 then
        v_refusal := private.ingest_bucket_refusal('key_requests', k_rps[v_k], k_rb[v_k], k_rtat[v_k], 1, v_now);
      elsif k_dps[v_k] > 0 and v_new_d - v_now > k_db[v_k] / k_dps[v_k] + 1e-6 then
        v_refusal := private.ingest_bucket_refusal('key_readings', k_dps[v_k], k_db[v_k], k_dtat[v_k], v_n, v_now);
      elsif v_w is not null then
        v_new_w := greatest(coalesce(w_tat[v_w], v_now), v_now) + least(v_n, w_b[v_w]) / nullif(w_ps[v_w], 0);
        if w_ps[v_w] > 0 and v_new_w - v_now > w_b[v_w] / w_ps[v_w] + 1e-6 then
          v_refusal := private.ingest_bucket_refusal('workspace_readings', w_ps[v_w], w_b[v_w], w_tat[v_w], v_n,
            v_now);
        elsif w_day[v_w] > 0 and w_day_used[v_w] + v_n > w_day[v_w] then
          v_refusal := private.ingest_quota_refusal('workspace_day', w_day[v_w], w_day_used[v_w],
            extract(epoch from (v_day + 1)::timestamp at time zone 'UTC') - v_now);
        elsif w_month[v_w] > 0 and w_month_used[v_w] + v_n > w_month[v_w] then
          v_refusal := private.ingest_quota_refusal('workspace_month', w_month[v_w], w_month_used[v_w],
            extract(epoch from (v_month + interval '1 month')::timestamp at time zone 'UTC') - v_now);
        end if;
      end if;

      if v_refusal is null then
        if k_rps[v_k] > 0 then k_rtat[v_k] := v_new_r; end if;
        if k_dps[v_k] > 0 then k_dtat[v_k] := v_new_d; end if;
        if v_w is not null then
          if w_ps[v_w] > 0 then w_tat[v_w] := v_new_w; end if;
          w_day_used[v_w] := w_day_used[v_w] + v_n;
          w_month_used[v_w] := w_month_used[v_w] + v_n;
        end if;
      else
        v_refused := v_refused
          || jsonb_build_object(v_row.i::text, v_refusal || jsonb_build_object('datasource_id', k_ds[v_k]));
      end if;
    end loop;
  end if;

  if p_stage = 'keys' then
    update private.key_buckets b
    set requests_tat = s.requests_tat, readings_tat = s.readings_tat
    from unnest(v_keys, k_rtat, k_dtat) s (key_id, requests_tat, readings_tat)
    where b.key_id = s.key_id
      and (b.requests_tat, b.readings_tat) is distinct from (s.requests_tat, s.readings_tat);
  end if;
  if cardinality(v_ws) > 0 then
    update public.workspace_usage u
    set readings_tat = s.readings_tat, day = v_day, day_readings = s.day_used, month = v_month,
      month_readings = s.month_used
    from unnest(v_ws, w_tat, w_day_used, w_month_used) s (workspace_id, readings_tat, day_used, month_used)
    where u.workspace_id = s.workspace_id;
  end if;

  if v_refused = '{}' and not (p_stage = 'keys' and v_ws_limited) then
    return null;
  end if;
  return jsonb_strip_nulls(
    jsonb_build_object('refused', nullif(v_refused, '{}'), 'workspaces', p_stage = 'keys' and v_ws_limited)
  );
end;
$$;
revoke all on function private.ingest_take_limits(jsonb, boolean, jsonb, text) from public;

-- The `keys` stage of ingest_take_limits for a call of one single payload (one request, one reading): the
-- function's usual call when requests come one at a time. Same limits, same refusal, same answer, in one
-- query and one update instead of ingest_take_limits' loops (which cost about 390 us a call alone:
-- docs/performance.md), except that `workspaces`, when the request is admitted, is the workspace's share for
-- ingest_take_workspace_shares.
create function private.ingest_take_key_limit(p_key_id uuid, p_defaults jsonb)
returns jsonb
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_now double precision;
  v_limit record;
  v_new_r double precision;
  v_new_d double precision;
  v_refusal jsonb;
begin
  -- The key's limits and its bucket, locked. The limits repeat private.ingest_limits_of's expressions: calling it
  -- here doubled this function's cost (docs/performance.md); the property test in ingest_limits_test.ts holds
  -- both stages to the same decisions.
  select k.datasource_id,
    coalesce(k.rate_limit_per_second, (p_defaults ->> 'requests_per_second')::int, 0)::float8 as rps,
    coalesce(k.rate_limit_burst, (p_defaults ->> 'requests_burst')::int, 1)::float8 as rb,
    (case
      when k.rate_limit_per_second is null or coalesce((p_defaults ->> 'requests_per_second')::int, 0) <= 0
        then coalesce((p_defaults ->> 'readings_per_second')::int, 0)
      else ceil(k.rate_limit_per_second::numeric * (p_defaults ->> 'readings_per_second')::int
        / (p_defaults ->> 'requests_per_second')::int)
    end)::float8 as dps,
    greatest(
      case when k.rate_limit_burst is null then coalesce((p_defaults ->> 'readings_burst')::int, 1)
        else ceil(k.rate_limit_burst::numeric * (p_defaults ->> 'readings_burst')::int
          / greatest((p_defaults ->> 'requests_burst')::int, 1)) end,
      coalesce((p_defaults ->> 'max_readings')::int, 1)
    )::float8 as db,
    -- Its workspace's share, when the workspace has a limit (as ingest_store_batch lists it).
    case when coalesce(w.readings_per_second, (p_defaults ->> 'workspace_readings_per_second')::int, 0) > 0
      or coalesce(w.readings_per_day, (p_defaults ->> 'workspace_readings_per_day')::bigint, 0) > 0
      or coalesce(w.readings_per_month, (p_defaults ->> 'workspace_readings_per_month')::bigint, 0) > 0
    then jsonb_build_array(jsonb_build_object(
      'workspace_id', d.workspace_id,
      'per_second', coalesce(w.readings_per_second, (p_defaults ->> 'workspace_readings_per_second')::int, 0),
      'burst', greatest(coalesce(w.readings_burst, nullif((p_defaults ->> 'workspace_readings_burst')::int, 0),
        coalesce(w.readings_per_second, (p_defaults ->> 'workspace_readings_per_second')::int, 0)),
        coalesce((p_defaults ->> 'max_readings')::int, 1)),
      'per_day', coalesce(w.readings_per_day, (p_defaults ->> 'workspace_readings_per_day')::bigint, 0),
      'per_month', coalesce(w.readings_per_month, (p_defaults ->> 'workspace_readings_per_month')::bigint, 0),
      'readings', 1
    )) end as ws_share,
    b.requests_tat as rtat, b.readings_tat as dtat
  into v_limit
  from public.datasource_api_keys k
  join public.datasources d on d.id = k.datasource_id
  left join public.workspace_limits w on w.workspace_id = d.workspace_id
  join private.key_buckets b on b.key_id = k.id
  where k.id = p_key_id
  for update of b;
  if v_limit is null or (v_limit.rps <= 0 and v_limit.dps <= 0) then
    -- An unknown key (the write refuses it; every key has its bucket row) or no key limit: nothing to take.
    return case when v_limit.ws_share is not null then jsonb_build_object('workspaces', v_limit.ws_share) end;
  end if;

  -- Now, once the row is ours (see ingest_take_limits).
  v_now := extract(epoch from clock_timestamp());
  v_new_r := greatest(coalesce(v_limit.rtat, v_now), v_now) + 1 / nullif(v_limit.rps, 0);
  v_new_d := greatest(coalesce(v_limit.dtat, v_now), v_now) + least(1, v_limit.db) / nullif(v_limit.dps, 0);
  if v_limit.rps > 0 and v_new_r - v_now > v_limit.rb / v_limit.rps + 1e-6 then
    v_refusal := private.ingest_bucket_refusal('key_requests', v_limit.rps, v_limit.rb, v_limit.rtat, 1, v_now);
  elsif v_limit.dps > 0 and v_new_d - v_now > v_limit.db / v_limit.dps + 1e-6 then
    v_refusal := private.ingest_bucket_refusal('key_readings', v_limit.dps, v_limit.db, v_limit.dtat, 1, v_now);
  else
    update private.key_buckets b
    set requests_tat = case when v_limit.rps > 0 then v_new_r else b.requests_tat end,
      readings_tat = case when v_limit.dps > 0 then v_new_d else b.readings_tat end
    where b.key_id = p_key_id;
    return case when v_limit.ws_share is not null then jsonb_build_object('workspaces', v_limit.ws_share) end;
  end if;
  return jsonb_build_object(
    'refused', jsonb_build_object('1', v_refusal || jsonb_build_object('datasource_id', v_limit.datasource_id)),
    'workspaces', v_limit.ws_share is not null
  );
end;
$$;
revoke all on function private.ingest_take_key_limit(uuid, jsonb) from public;

-- The `keys` stage of ingest_take_limits for private.ingest_store_batch, from the requests as it read them
-- (`key_limits` set where the key has a limit and the function's lease does not cover the request): the buckets
-- locked by one statement and, when every key's share fits, taken by another, with no second reading of the
-- requests, keys and limits. When a share does not fit, the general stage decides request by request.
-- With `key_lease_seconds` in `p_limits`, a key whose limits are high lends the calling instance a lease when
-- it fits after the share: `key_lease_seconds` of its rates, at most 1% of its bursts, and only from 10
-- requests up (smaller leases save little). The lease is taken from the buckets now; the instance spends it on
-- its next requests of that key (`leased`), which then skip this stage (docs/api.md#limits-across-instances).
-- Returns `{refused: {<i>: refusal}}`, `{leases: {<key_id>: requests}}`, or null.
create function private.ingest_take_batch_key_limits(p_requests private.batch_request[], p_limits jsonb)
returns jsonb
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_now double precision;
  v_lease_s double precision := coalesce((p_limits ->> 'key_lease_seconds')::float8, 0);
  v_fits boolean;
  v_leases jsonb;
  v_refused jsonb;
begin
  perform from private.key_buckets b
  where b.key_id in (select q.key_id from unnest(p_requests) q where q.key_limits is not null)
  order by b.key_id
  for update;
  if not found then
    return null;
  end if;
  -- Now, once the rows are ours (see ingest_take_limits).
  v_now := extract(epoch from clock_timestamp());

  -- Each key's share: one request and one reading per request; its limits are the same in each of its requests.
  with shares as (
    select s.key_id, s.n, s.l,
      greatest(coalesce(b.requests_tat, v_now), v_now) as r0,
      greatest(coalesce(b.readings_tat, v_now), v_now) as d0,
      coalesce(floor(least(
        case when s.l[1] > 0 then least(s.l[1] * v_lease_s, s.l[2] * 0.01) end,
        case when s.l[3] > 0 then least(s.l[3] * v_lease_s, s.l[4] * 0.01) end
      )), 0) as lease
    from (
      select q.key_id, count(*)::float8 as n, min(q.key_limits) as l
      from unnest(p_requests) q
      where q.key_limits is not null
      group by q.key_id
    ) s
    join private.key_buckets b on b.key_id = s.key_id
  ), fits as (
    select coalesce(bool_and(
      (s.l[1] <= 0 or s.r0 + s.n / s.l[1] - v_now <= s.l[2] / s.l[1] + 1e-6)
      and (s.l[3] <= 0 or s.d0 + s.n / s.l[3] - v_now <= s.l[4] / s.l[3] + 1e-6)
    ), true) as ok
    from shares s
  ), lent as (
    select s.key_id, s.n, s.l, s.r0, s.d0,
      case when s.lease >= 10
        and (s.l[1] <= 0 or s.r0 + (s.n + s.lease) / s.l[1] - v_now <= s.l[2] / s.l[1] + 1e-6)
        and (s.l[3] <= 0 or s.d0 + (s.n + s.lease) / s.l[3] - v_now <= s.l[4] / s.l[3] + 1e-6)
      then s.lease else 0 end as lease
    from shares s
  ), taken as (
    update private.key_buckets b
    set requests_tat = case when t.l[1] > 0 then t.r0 + (t.n + t.lease) / t.l[1] else b.requests_tat end,
      readings_tat = case when t.l[3] > 0 then t.d0 + (t.n + t.lease) / t.l[3] else b.readings_tat end
    from lent t
    where b.key_id = t.key_id and (select f.ok from fits f)
    returning t.key_id, t.lease
  )
  select f.ok, (select jsonb_object_agg(t.key_id, t.lease::int) from taken t where t.lease > 0)
  into v_fits, v_leases
  from fits f;
  if v_fits then
    return case when v_leases is not null then jsonb_build_object('leases', v_leases) end;
  end if;
  v_refused := private.ingest_take_limits(
    (select jsonb_agg(case when q.key_limits is not null then jsonb_build_object('key_id', q.key_id) else '{}' end
      order by q.i) from unnest(p_requests) q),
    false, p_limits, 'keys'
  ) -> 'refused';
  return case when v_refused is not null then jsonb_build_object('refused', v_refused) end;
end;
$$;
revoke all on function private.ingest_take_batch_key_limits(private.batch_request[], jsonb) from public;

-- The `workspaces` stage of ingest_take_limits when every workspace's share fits, from the shares
-- private.ingest_store_batch lists (`[{workspace_id, per_second, burst, per_day, per_month, readings}]`): the usage
-- rows locked by one statement and taken by another. False, having taken nothing, when a share does not fit (the
-- general stage then decides request by request).
create function private.ingest_take_workspace_shares(p_workspaces jsonb)
returns boolean
language plpgsql
volatile
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_now double precision;
  v_day date := (now() at time zone 'UTC')::date;
  v_month date := date_trunc('month', now() at time zone 'UTC')::date;
  v_fits boolean;
begin
  perform from public.workspace_usage u
  where u.workspace_id in (select s.workspace_id from jsonb_to_recordset(p_workspaces) s (workspace_id uuid))
  order by u.workspace_id
  for update;
  -- Now, once the rows are ours (see ingest_take_limits).
  v_now := extract(epoch from clock_timestamp());

  with shares as (
    select s.*, u.readings_tat as tat,
      case when u.day = v_day then u.day_readings else 0 end as day_used,
      case when u.month = v_month then u.month_readings else 0 end as month_used
    from jsonb_to_recordset(p_workspaces) s (
      workspace_id uuid, per_second float8, burst float8, per_day float8, per_month float8, readings bigint
    )
    join public.workspace_usage u on u.workspace_id = s.workspace_id
  ), fits as (
    select coalesce(bool_and(
      (s.per_second <= 0
        or greatest(coalesce(s.tat, v_now), v_now) + s.readings / s.per_second - v_now <= s.burst / s.per_second + 1e-6)
      and (s.per_day <= 0 or s.day_used + s.readings <= s.per_day)
      and (s.per_month <= 0 or s.month_used + s.readings <= s.per_month)
    ), true) as ok
    from shares s
  ), taken as (
    update public.workspace_usage u
    set readings_tat = case when s.per_second > 0 then greatest(coalesce(s.tat, v_now), v_now) + s.readings / s.per_second
        else u.readings_tat end,
      day = v_day, day_readings = s.day_used + s.readings, month = v_month, month_readings = s.month_used + s.readings
    from shares s
    where u.workspace_id = s.workspace_id and (select f.ok from fits f)
  )
  select f.ok into v_fits from fits f;
  return v_fits;
end;
$$;
revoke all on function private.ingest_take_workspace_shares(jsonb) from public;

-- Single payloads within their workspaces' limits (ingest_write_within_limits for a call of which some workspace has
-- a limit): private.ingest_store_batch writes them within their key limits and lists each limited workspace's share,
-- which is then taken. When a share does not fit, the general stage refuses requests one by one, the write is undone
-- (a subtransaction) and made again without them; each attempt has fewer requests, so this ends. Answers as
-- ingest_write_batch does, with `{code: PT429, limit}` for each refused request.
create function private.ingest_store_batch_within_workspace_limits(p_requests jsonb, p_limits jsonb)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_requests jsonb := p_requests;
  v_index int[] := array(select generate_series(1, jsonb_array_length(p_requests))); -- v_requests' in p_requests
  v_refused jsonb := '{}'; -- the workspaces' refusals, by index in p_requests
  v_answer jsonb;
  v_admitted int[];
  v_stage jsonb;
  v_drop int[];
begin
  loop
    begin
      v_answer := private.ingest_store_batch(v_requests, p_limits, true);
      exit when v_answer -> 'workspaces' is null or private.ingest_take_workspace_shares(v_answer -> 'workspaces');
      -- A share does not fit: the general stage, over the requests the key limits admitted.
      v_admitted := array(
        select n from generate_series(1, jsonb_array_length(v_requests)) n
        where (v_answer -> 'results' -> (n - 1) ->> 'code') is distinct from 'PT429'
      );
      v_stage := private.ingest_take_limits(
        (select jsonb_agg(v_requests -> (a.n - 1) order by a.o) from unnest(v_admitted) with ordinality a (n, o)),
        false, p_limits, 'workspaces'
      );
      exit when v_stage is null;
      raise exception 'limited' using errcode = 'PT429';
    exception when sqlstate 'PT429' then
      -- Undone. Keep the refusals under their indices in p_requests, and write the others again.
      v_drop := array(select v_admitted[e.key::int] from jsonb_each(v_stage -> 'refused') e);
      v_refused := v_refused
        || (select jsonb_object_agg(v_index[v_admitted[e.key::int]], e.value) from jsonb_each(v_stage -> 'refused') e);
      v_requests := (
        select coalesce(jsonb_agg(v_requests -> (n - 1) order by n), '[]')
        from generate_series(1, jsonb_array_length(v_requests)) n where n <> all (v_drop)
      );
      v_index := array(select v_index[n] from generate_series(1, cardinality(v_index)) n where n <> all (v_drop));
    end;
  end loop;
  v_answer := v_answer - 'workspaces';
  if v_refused = '{}' then
    return v_answer;
  end if;
  perform private.ingest_count_refusals(v_refused);
  return jsonb_build_object(
    'received_at', v_answer -> 'received_at',
    'results', private.ingest_merge_results(p_requests, v_refused, v_answer -> 'results',
      jsonb_build_object('observed_at', v_answer -> 'received_at', 'superseded', '[]'::jsonb))
  ) || case when v_answer ? 'leases' then jsonb_build_object('leases', v_answer -> 'leases') else '{}' end;
end;
$$;
revoke all on function private.ingest_store_batch_within_workspace_limits(jsonb, jsonb) from public;

-- Counts the refusals of a call (`{i: refusal with its datasource_id}`) in ingest_throttles.
create function private.ingest_count_refusals(p_refused jsonb)
returns void
language sql
volatile
set search_path = ''
as $$
  insert into public.ingest_throttles as t (datasource_id, hour, limit_name, refused)
  select (e.value ->> 'datasource_id')::uuid, date_trunc('hour', now()), e.value ->> 'limit', count(*)
  from jsonb_each(p_refused) e
  group by 1, 3
  on conflict (datasource_id, hour, limit_name) do update set refused = t.refused + excluded.refused;
$$;
revoke all on function private.ingest_count_refusals(jsonb) from public;

-- Writes a call's requests within the limits, for the two batch write
-- functions (`p_readings`: ingest_write_readings' requests). Single payloads:
-- private.ingest_store_batch takes the keys' limits in its own pass, and
-- ingest_store_batch_within_workspace_limits the workspaces' when one has
-- any. Readings: the keys' limits first, then the write of what they
-- admitted, then the workspaces' limits when a workspace has any. A request
-- the workspaces' limits refuse was written already: the attempt is undone
-- (a subtransaction, paid only by calls of workspaces with limits) and the
-- others are written again; each attempt has fewer requests, so this ends. Answers as the write function does, with
-- `{code: PT429, limit}` for each refused request.
create function private.ingest_write_within_limits(p_requests jsonb, p_readings boolean, p_limits jsonb)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_keys jsonb;
  v_refused jsonb;
  v_requests jsonb := p_requests;
  v_index int[];
  v_stage jsonb;
  v_answer jsonb;
begin
  -- Single payloads: the write takes the key limits itself, in one pass; without a subtransaction unless a
  -- workspace has a limit.
  if not p_readings then
    if coalesce((p_limits ->> 'workspace_readings_per_second')::int, 0) <= 0
      and coalesce((p_limits ->> 'workspace_readings_per_day')::bigint, 0) <= 0
      and coalesce((p_limits ->> 'workspace_readings_per_month')::bigint, 0) <= 0
    then
      v_answer := private.ingest_store_batch(p_requests, p_limits, false);
      if not v_answer ? 'workspaces' then
        return v_answer;
      end if;
    end if;
    return private.ingest_store_batch_within_workspace_limits(p_requests, p_limits);
  end if;
  v_keys := private.ingest_take_limits(p_requests, p_readings, p_limits, 'keys');
  v_refused := coalesce(v_keys -> 'refused', '{}');
  if v_keys is null then
    return private.ingest_write_requests(p_requests, p_readings);
  end if;
  if v_refused <> '{}' then
    v_index := array(select i from generate_series(1, jsonb_array_length(p_requests)) i where not v_refused ? i::text);
    v_requests := private.ingest_admitted(p_requests, v_refused);
  end if;
  if not (v_keys ->> 'workspaces')::boolean then
    v_answer := private.ingest_write_requests(v_requests, p_readings);
  else
    loop
      begin
        v_answer := private.ingest_write_requests(v_requests, p_readings);
        v_stage := private.ingest_take_limits(v_requests, p_readings, p_limits, 'workspaces');
        exit when v_stage is null;
        raise exception 'limited' using errcode = 'PT429';
      exception when sqlstate 'PT429' then
        -- Undone. Keep the refusals under their indices in p_requests, and write the others again.
        v_index := coalesce(v_index, array(select generate_series(1, jsonb_array_length(p_requests))));
        v_refused := v_refused
          || (select jsonb_object_agg(v_index[e.key::int], e.value) from jsonb_each(v_stage -> 'refused') e);
        v_index := array(
          select i from unnest(v_index) with ordinality u (i, n) where not (v_stage -> 'refused') ? u.n::text
        );
        v_requests := private.ingest_admitted(v_requests, v_stage -> 'refused');
      end;
    end loop;
  end if;
  if v_refused = '{}' then
    return v_answer;
  end if;
  perform private.ingest_count_refusals(v_refused);
  return jsonb_build_object(
    'received_at', v_answer -> 'received_at',
    'results', private.ingest_merge_results(p_requests, v_refused, v_answer -> 'results',
      case when p_readings then null
        else jsonb_build_object('observed_at', v_answer -> 'received_at', 'superseded', '[]'::jsonb) end)
  );
end;
$$;

-- The write of a call's requests by the write function of their kind (none: only the time of receipt).
create function private.ingest_write_requests(p_requests jsonb, p_readings boolean)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
begin
  return case
    when p_requests = '[]'::jsonb then
      jsonb_build_object('received_at', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    when p_readings then public.ingest_write_readings(p_requests)
    else public.ingest_write_batch(p_requests)
  end;
end;
$$;
revoke all on function private.ingest_write_requests(jsonb, boolean) from public;
revoke all on function private.ingest_write_within_limits(jsonb, boolean, jsonb) from public;

-- A bucket's refusal, as the 429 describes it: whole tokens left now,
-- seconds until the bucket is full again, seconds until `p_cost` fits.
create function private.ingest_bucket_refusal(
  p_limit text, p_rate double precision, p_burst double precision, p_tat double precision,
  p_cost double precision, p_now double precision
)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'code', 'rate_limited',
    'limit', p_limit,
    'limit_value', p_burst,
    'per_second', p_rate,
    'remaining', floor(greatest(p_burst - (greatest(coalesce(p_tat, p_now), p_now) - p_now) * p_rate, 0)),
    'reset_s', ceil(greatest(coalesce(p_tat, p_now) - p_now, 0)),
    'retry_after_s', greatest(ceil(greatest(coalesce(p_tat, p_now), p_now) + least(p_cost, p_burst) / p_rate
      - p_now - p_burst / p_rate), 1)
  );
$$;
revoke all on function private.ingest_bucket_refusal(text, double precision, double precision, double precision,
  double precision, double precision) from public;

-- A quota's refusal: what is left of it and when it resets (the next UTC day or month).
create function private.ingest_quota_refusal(p_limit text, p_quota bigint, p_used bigint, p_reset_s double precision)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'code', 'quota_exceeded',
    'limit', p_limit,
    'limit_value', p_quota,
    'remaining', greatest(p_quota - p_used, 0),
    'reset_s', ceil(p_reset_s),
    'retry_after_s', greatest(ceil(p_reset_s), 1)
  );
$$;
revoke all on function private.ingest_quota_refusal(text, bigint, bigint, double precision) from public;

-- The requests of a call that the limits admitted, in order.
create function private.ingest_admitted(p_requests jsonb, p_refused jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select coalesce(jsonb_agg(e.value order by e.ord), '[]'::jsonb)
  from jsonb_array_elements(p_requests) with ordinality e (value, ord)
  where not p_refused ? e.ord::text;
$$;
revoke all on function private.ingest_admitted(jsonb, jsonb) from public;

-- One result per request of the call: a refusal (`{code: PT429, limit}`) for
-- those the limits refused, else the write function's result for the
-- admitted ones, in order (`p_default` where it answered without results).
create function private.ingest_merge_results(p_requests jsonb, p_refused jsonb, p_results jsonb, p_default jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select coalesce(jsonb_agg(
    case when r.refused then jsonb_build_object('code', 'PT429', 'limit', (p_refused -> r.ord::text) - 'datasource_id')
      else coalesce(p_results -> (r.kept - 1)::int, p_default) end
    order by r.ord
  ), '[]'::jsonb)
  from (
    select e.ord, p_refused ? e.ord::text as refused,
      count(*) filter (where not p_refused ? e.ord::text) over (order by e.ord) as kept
    from jsonb_array_elements(p_requests) with ordinality e (value, ord)
  ) r;
$$;
revoke all on function private.ingest_merge_results(jsonb, jsonb, jsonb, jsonb) from public;

-- The write functions the ingest-data function calls: the limits of
-- `p_limits` (its settings, as defaults, and its Realtime settings), then the
-- write of what they admitted, in one transaction. The forms without
-- `p_limits` (..._ingest_functions.sql) write without limits (tests and
-- trusted service-role callers).
create function public.ingest_write(
  p_datasource_id uuid,
  p_key_id uuid,
  p_values jsonb,
  p_observed_at timestamptz,
  p_limits jsonb
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_ask jsonb := jsonb_build_array(jsonb_build_object('key_id', p_key_id));
  v_stage jsonb;
  v_answer jsonb;
begin
  perform private.use_realtime_settings(p_limits);
  v_stage := private.ingest_take_key_limit(p_key_id, p_limits);
  if v_stage is null then
    return public.ingest_write(p_datasource_id, p_key_id, p_values, p_observed_at);
  elsif v_stage -> 'refused' is null then
    -- The workspace has limits: written first, undone when they refuse (see ingest_write_within_limits).
    begin
      v_answer := public.ingest_write(p_datasource_id, p_key_id, p_values, p_observed_at);
      if private.ingest_take_workspace_shares(v_stage -> 'workspaces') then
        return v_answer;
      end if;
      v_stage := private.ingest_take_limits(v_ask, false, p_limits, 'workspaces');
      if v_stage is null then
        return v_answer;
      end if;
      raise exception 'limited' using errcode = 'PT429';
    exception when sqlstate 'PT429' then
      null;
    end;
  end if;
  perform private.ingest_count_refusals(v_stage -> 'refused');
  return jsonb_build_object('code', 'PT429', 'limit', (v_stage -> 'refused' -> '1') - 'datasource_id');
end;
$$;
revoke all on function public.ingest_write(uuid, uuid, jsonb, timestamptz, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write(uuid, uuid, jsonb, timestamptz, jsonb) to service_role;

create function public.ingest_write_batch(p_requests jsonb, p_limits jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.ingest_write_within_limits(p_requests, false, p_limits);
end;
$$;
revoke all on function public.ingest_write_batch(jsonb, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb, jsonb) to service_role;

create function public.ingest_write_readings(p_requests jsonb, p_limits jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.ingest_write_within_limits(p_requests, true, p_limits);
end;
$$;
revoke all on function public.ingest_write_readings(jsonb, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_readings(jsonb, jsonb) to service_role;

-- A bucket as GET /usage shows it: its size, rate, whole tokens left now and
-- seconds until it is full again (null when the limit is off).
create function private.ingest_bucket_state(p_rate double precision, p_burst double precision, p_tat double precision)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select case when p_rate > 0 then jsonb_build_object(
    'limit', p_burst,
    'per_second', p_rate,
    'remaining', floor(greatest(p_burst - (greatest(coalesce(p_tat, 0), extract(epoch from now())::float8)
      - extract(epoch from now())::float8) * p_rate, 0)),
    'reset_s', ceil(greatest(coalesce(p_tat, 0) - extract(epoch from now())::float8, 0))
  ) end;
$$;
revoke all on function private.ingest_bucket_state(double precision, double precision, double precision) from public;

-- A quota as GET /usage and workspace_usage_now show it (null when it is off).
create function private.ingest_quota_state(p_quota bigint, p_used bigint, p_resets timestamptz)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select case when p_quota > 0 then jsonb_build_object(
    'limit', p_quota,
    'used', p_used,
    'remaining', greatest(p_quota - p_used, 0),
    'reset_s', ceil(extract(epoch from p_resets - now())),
    'resets_at', to_char(p_resets at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  ) else jsonb_build_object('limit', null, 'used', p_used) end;
$$;
revoke all on function private.ingest_quota_state(bigint, bigint, timestamptz) from public;

-- What a key and its workspace may still send now (GET /functions/v1/ingest-data/usage),
-- with `p_limits` as the defaults; service_role only.
create function public.ingest_usage(p_key_id uuid, p_limits jsonb)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'key', jsonb_build_object(
      'requests', private.ingest_bucket_state(l.requests_per_second, l.requests_burst, b.requests_tat),
      'readings', private.ingest_bucket_state(l.readings_per_second, l.readings_burst, b.readings_tat)
    ),
    'workspace', jsonb_build_object(
      'readings', private.ingest_bucket_state(l.ws_per_second, l.ws_burst, u.readings_tat),
      'day', private.ingest_quota_state(l.ws_per_day,
        case when u.day = (now() at time zone 'UTC')::date then u.day_readings else 0 end,
        ((now() at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC'),
      'month', private.ingest_quota_state(l.ws_per_month,
        case when u.month = date_trunc('month', now() at time zone 'UTC')::date then u.month_readings else 0 end,
        (date_trunc('month', now() at time zone 'UTC') + interval '1 month') at time zone 'UTC')
    ),
    'throttled_last_hour', (
      select coalesce(sum(t.refused), 0) from public.ingest_throttles t
      where t.datasource_id = l.datasource_id and t.hour >= date_trunc('hour', now() - interval '1 hour')
    )
  )
  from private.ingest_limits_of(array[p_key_id], p_limits) l
  left join private.key_buckets b on b.key_id = l.key_id
  left join public.workspace_usage u on u.workspace_id = l.workspace_id;
$$;
revoke all on function public.ingest_usage(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_usage(uuid, jsonb) to service_role;

-- For dashboards: a workspace's own limits (null: the function's default),
-- what it used today and this month, and the requests each of its
-- datasources had refused in the last hour, by limit. Security invoker: row
-- level security decides (members see usage and throttles, owners and
-- editors the limits).
create function public.workspace_usage_now(p_workspace_id uuid)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select jsonb_build_object(
    'workspace_id', u.workspace_id,
    'limits', (
      select jsonb_build_object('readings_per_second', l.readings_per_second, 'readings_burst', l.readings_burst,
        'readings_per_day', l.readings_per_day, 'readings_per_month', l.readings_per_month)
      from public.workspace_limits l where l.workspace_id = u.workspace_id
    ),
    'day', jsonb_build_object('day', u.day, 'readings',
      case when u.day = (now() at time zone 'UTC')::date then u.day_readings else 0 end),
    'month', jsonb_build_object('month', u.month, 'readings',
      case when u.month = date_trunc('month', now() at time zone 'UTC')::date then u.month_readings else 0 end),
    'throttled_last_hour', coalesce((
      select jsonb_agg(jsonb_build_object('datasource_id', t.datasource_id, 'limit', t.limit_name,
        'refused', t.refused) order by t.datasource_id, t.limit_name)
      from (
        select t.datasource_id, t.limit_name, sum(t.refused)::int as refused
        from public.ingest_throttles t
        join public.datasources d on d.id = t.datasource_id
        where d.workspace_id = u.workspace_id and t.hour >= date_trunc('hour', now() - interval '1 hour')
        group by 1, 2
      ) t
    ), '[]'::jsonb)
  )
  from public.workspace_usage u
  where u.workspace_id = p_workspace_id;
$$;
revoke all on function public.workspace_usage_now(uuid) from public, anon, authenticated, service_role;
grant execute on function public.workspace_usage_now(uuid) to authenticated;
