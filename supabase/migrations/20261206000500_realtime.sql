-- Realtime: dashboards receive new values as broadcasts on the private
-- channel `datasource:<id>`, only members of the datasource's workspace, and
-- at most as many a second as the datasource's budget allows.
--
-- Broadcasts, not postgres_changes: datasource_values is in no publication.
-- Supabase Realtime does not apply row level security to postgres_changes
-- DELETE events: it sends each one, with the old row's primary key
-- (datasource_id, data_key), to every subscriber of the table, so deleting a
-- datasource would tell any signed-in subscriber its id and DataKeys.

-- True when the current user may receive the topic: `datasource:<id>` of a
-- datasource in one of their workspaces. Any other topic is refused.
create function private.can_receive_topic(p_topic text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if p_topic is null or p_topic !~ '^datasource:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  end if;
  return private.has_datasource_role(substr(p_topic, 12)::uuid, array['owner', 'editor', 'viewer']);
end;
$$;
revoke all on function private.can_receive_topic(text) from public;
grant execute on function private.can_receive_topic(text) to authenticated;

-- Members of a workspace receive the broadcasts of its datasources, each on
-- its own topic only: a stored row is readable on its own topic
-- (realtime.messages.topic), never through another topic being authorized
-- (realtime.topic()), which would let a member of `datasource:A` read every
-- other datasource's stored broadcasts.
create policy datasource_broadcasts_select_members on realtime.messages
for select to authenticated
using (
  realtime.messages.extension = 'broadcast'
  and realtime.messages.topic = (select realtime.topic())
  and private.can_receive_topic((select realtime.topic()))
);

-- The broadcast budget, within Supabase's quotas. Supabase meters Realtime
-- messages per second per project and limits a broadcast's size, and a twin
-- dashboard needs the newest values, not every one. So each datasource sends
-- at most `broadcasts_per_second` broadcasts a second (0: one per commit). A
-- commit over that budget sends nothing and leaves its DataKeys pending on
-- the datasource row (datasources.broadcast_*), which the write has locked
-- already; the next broadcast, from a later commit or from a flush once the
-- interval has passed, carries every pending DataKey with its newest value: a
-- subscriber ends in the state of datasource_latest_values(). How the
-- trailing edge is guaranteed, the project budget, and figures:
-- docs/realtime.md, "The broadcast budget".

-- What the flush looks for. Only holding and sending change broadcast_due_at, so the other updates of the row
-- (last_ingested_at, pending DataKeys) stay HOT.
create index datasources_broadcast_due_idx on public.datasources (broadcast_due_at)
where broadcast_due_at is not null;

-- How many datasources broadcast lately, counted at most once a second by the flush: the project budget's
-- share per datasource (one row, read by each commit, written once a second).
create table private.realtime_activity (
  singleton boolean primary key default true check (singleton),
  active_datasources integer not null default 0,
  counted_at timestamptz not null default '-infinity'
);
alter table private.realtime_activity enable row level security;
revoke all on table private.realtime_activity from public, anon, authenticated, service_role;
insert into private.realtime_activity default values;

-- The function's Realtime settings for this transaction (`p_limits` of the write functions):
-- `realtime_messages_per_second` (the project budget, 0: none) and `realtime_max_payload_bytes`. plpgsql, as
-- broadcast_interval below: a sql function with its own search_path is planned again at every call (about 30 us),
-- plpgsql keeps its plans for the session.
create function private.use_realtime_settings(p_settings jsonb)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform set_config('ingest.realtime_messages_per_second',
      coalesce(p_settings ->> 'realtime_messages_per_second', ''), true),
    set_config('ingest.realtime_max_payload_bytes', coalesce(p_settings ->> 'realtime_max_payload_bytes', ''), true);
end;
$$;
revoke all on function private.use_realtime_settings(jsonb) from public;

-- The least time between two broadcasts of a datasource: its own budget, or its share of the project's budget
-- when that is less (every active datasource gets the same share).
create function private.broadcast_interval(p_per_second smallint)
returns interval
language plpgsql
stable
set search_path = ''
as $$
begin
  return make_interval(secs => greatest(
    1.0 / p_per_second,
    coalesce((select a.active_datasources from private.realtime_activity a)
      / nullif(nullif(current_setting('ingest.realtime_messages_per_second', true), '')::numeric, 0), 0)
  ));
end;
$$;
revoke all on function private.broadcast_interval(smallint) from public;

-- Sends one `values` broadcast (realtime.send). Its payload is `{datasource_id, observed_at, received_at,
-- values, observed_at_by_key?}`; when the values are larger than the configured size (default 200,000 bytes,
-- below the Free plan's 256 KB), `values` is left out and `values_omitted: true` says to read them.
create function private.send_values(
  p_datasource_id uuid, p_values jsonb, p_observed_at_by_key jsonb, p_observed_at text, p_received_at text
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_payload jsonb := jsonb_build_object(
    'datasource_id', p_datasource_id,
    'observed_at', p_observed_at,
    'received_at', p_received_at,
    'values', p_values
  );
begin
  if p_observed_at_by_key is not null then
    v_payload := v_payload || jsonb_build_object('observed_at_by_key', p_observed_at_by_key);
  end if;
  if octet_length(p_values::text)
      > coalesce(nullif(current_setting('ingest.realtime_max_payload_bytes', true), '')::int, 200000) then
    v_payload := (v_payload - 'values') || jsonb_build_object('values_omitted', true,
      'observed_at_by_key', coalesce(p_observed_at_by_key, (
        select jsonb_object_agg(k, p_observed_at) from jsonb_object_keys(p_values) k
      )));
  end if;
  perform realtime.send(v_payload, 'values', 'datasource:' || p_datasource_id::text, true);
end;
$$;
revoke all on function private.send_values(uuid, jsonb, jsonb, text, text) from public;

-- A commit's broadcast for one datasource, whose row the caller has locked: sent now with the pending
-- DataKeys' newest values added when the datasource's interval has passed, else its DataKeys are left
-- pending until the next broadcast. Returns whether it was sent.
create function private.broadcast_values(
  p_datasource_id uuid, p_values jsonb, p_observed_at_by_key jsonb, p_observed_at text, p_received_at text
)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_budget smallint;
  v_sent_at timestamptz;
  v_pending text[];
  v_due_at timestamptz;
  v_interval interval;
  v_more jsonb;
  v_more_times jsonb;
  v_more_latest text;
begin
  select d.broadcasts_per_second, d.broadcast_sent_at, d.broadcast_pending, d.broadcast_due_at
  into v_budget, v_sent_at, v_pending, v_due_at
  from public.datasources d where d.id = p_datasource_id;
  if v_budget = 0 and cardinality(v_pending) = 0 then
    perform private.send_values(p_datasource_id, p_values, p_observed_at_by_key, p_observed_at, p_received_at);
    return true;
  end if;
  -- Held back until v_due_at, with this commit's DataKeys pending already (the usual case on a busy datasource):
  -- nothing to do, neither the interval to work out nor a second version of the row (and its WAL) in every commit.
  if v_budget > 0 and now() < v_due_at
    and not exists (select 1 from jsonb_object_keys(p_values) k where k <> all (v_pending)) then
    return false;
  end if;
  v_interval := private.broadcast_interval(greatest(v_budget, 1)::smallint);
  if v_budget = 0 or v_sent_at is null or now() >= v_sent_at + v_interval then
    -- The pending DataKeys this commit did not change, with their stored newest values.
    select jsonb_object_agg(v.data_key, v.value),
      jsonb_object_agg(v.data_key, to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(v.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    into v_more, v_more_times, v_more_latest
    from public.datasource_values v
    where cardinality(v_pending) > 0
      and v.datasource_id = p_datasource_id and v.data_key = any (v_pending) and not p_values ? v.data_key;
    if v_more is not null then
      p_observed_at_by_key := coalesce(p_observed_at_by_key,
        (select jsonb_object_agg(k, p_observed_at) from jsonb_object_keys(p_values) k)) || v_more_times;
      p_values := p_values || v_more;
      p_observed_at := greatest(p_observed_at, v_more_latest);
    end if;
    perform private.send_values(p_datasource_id, p_values, p_observed_at_by_key, p_observed_at, p_received_at);
    update public.datasources d
    set broadcast_sent_at = now(), broadcast_pending = '{}', broadcast_due_at = null
    where d.id = p_datasource_id;
    return true;
  end if;
  update public.datasources d
  set broadcast_pending = array(
      select distinct k from unnest(d.broadcast_pending || array(select jsonb_object_keys(p_values))) k order by k
    ),
    broadcast_due_at = coalesce(d.broadcast_due_at, d.broadcast_sent_at + v_interval)
  where d.id = p_datasource_id;
  return false;
end;
$$;
revoke all on function private.broadcast_values(uuid, jsonb, jsonb, text, text) from public;

-- Sends the pending broadcasts that are due (at most p_limit, oldest first; rows another transaction holds are
-- left to it), and counts the active datasources for the project budget at most once a second. Returns the
-- seconds until the next pending broadcast is due, null when none is pending. Run by pg_cron every second on
-- Supabase, by the function after a commit, by deno task dev's loop; running it twice sends once.
create function private.flush_broadcasts(p_limit integer default 1000)
returns double precision
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_ds record;
  v_values jsonb;
  v_times jsonb;
  v_observed_at text;
  v_received_at text;
begin
  update private.realtime_activity a
  set active_datasources = (
      select count(*) from public.datasources d
      where d.broadcast_sent_at > now() - interval '2 seconds' or d.broadcast_due_at is not null
    ),
    counted_at = now()
  where a.counted_at < now() - interval '1 second';

  for v_ds in
    select d.id, d.broadcast_pending from public.datasources d
    where d.broadcast_due_at <= now()
    order by d.broadcast_due_at
    limit p_limit
    for no key update skip locked
  loop
    select jsonb_object_agg(v.data_key, v.value),
      jsonb_object_agg(v.data_key, to_char(v.observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      to_char(max(v.observed_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      to_char(max(v.received_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    into v_values, v_times, v_observed_at, v_received_at
    from public.datasource_values v
    where v.datasource_id = v_ds.id and v.data_key = any (v_ds.broadcast_pending);
    if v_values is not null then
      perform private.send_values(v_ds.id, v_values, v_times, v_observed_at, v_received_at);
    end if;
    update public.datasources d
    set broadcast_sent_at = now(), broadcast_pending = '{}', broadcast_due_at = null
    where d.id = v_ds.id;
  end loop;

  return (
    select case when min(d.broadcast_due_at) is not null
      then greatest(extract(epoch from min(d.broadcast_due_at) - clock_timestamp()), 0)::float8 end
    from public.datasources d where d.broadcast_due_at is not null
  );
end;
$$;
revoke all on function private.flush_broadcasts(integer) from public;

-- The function's flush, with its Realtime settings (`p_limits` as the write functions take it).
create function public.ingest_flush_broadcasts(p_limits jsonb)
returns double precision
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform private.use_realtime_settings(p_limits);
  return private.flush_broadcasts();
end;
$$;
revoke all on function public.ingest_flush_broadcasts(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_flush_broadcasts(jsonb) to service_role;
