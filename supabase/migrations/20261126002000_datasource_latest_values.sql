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
