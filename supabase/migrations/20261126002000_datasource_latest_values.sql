-- The dashboards' first read: the latest value of every DataKey of a
-- datasource, before they apply live broadcasts (and again after each
-- reconnect, since Realtime keeps no queue).

-- Security invoker, so that the caller's row level security decides: a member
-- of the datasource's workspace gets its values, anyone else an empty list
-- (the same answer as for a datasource that does not exist). Only signed-in
-- users may call it; the function and service role read the table directly.
create function public.datasource_latest_values(p_datasource_id uuid)
returns table (data_key text, value jsonb, observed_at timestamptz, received_at timestamptz)
language sql
stable
security invoker
set search_path = ''
as $$
  select v.data_key, v.value, v.observed_at, v.received_at
  from public.datasource_values v
  where v.datasource_id = p_datasource_id
  order by v.data_key;
$$;
revoke all on function public.datasource_latest_values(uuid) from public, anon, authenticated, service_role;
grant execute on function public.datasource_latest_values(uuid) to authenticated;
