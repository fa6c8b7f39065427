-- Realtime: dashboards receive new values as broadcasts on the private
-- channel `datasource:<id>` and as postgres_changes on datasource_values.

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

-- Members of a workspace receive the broadcasts of its datasources.
create policy datasource_broadcasts_select_members on realtime.messages
for select to authenticated
using (realtime.messages.extension = 'broadcast' and private.can_receive_topic((select realtime.topic())));

-- postgres_changes subscribers get datasource_values rows (RLS applies).
alter publication supabase_realtime add table public.datasource_values;
