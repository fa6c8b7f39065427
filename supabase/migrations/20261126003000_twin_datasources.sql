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
