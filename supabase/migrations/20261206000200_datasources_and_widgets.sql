-- Datasources, what an external system pushes values into, and widgets,
-- what a dashboard shows of them and so what shape each DataKey must have.

-- One stream of readings from a customer's system, shown by the widgets linked to it.
-- config_version changes whenever its widgets change, so the function knows
-- when a cached validator is stale. The broadcast_* columns are the
-- datasource's Realtime budget and its state (see ..._realtime.sql);
-- history_days its retention (null: the default, 90 days; see
-- ..._values_and_history.sql), within its workspace's history_days_max.
create table public.datasources (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null check (length(trim(name)) between 1 and 200),
  enabled boolean not null default true,
  keep_history boolean not null default true,
  config_version bigint not null default 1,
  last_ingested_at timestamptz,
  created_at timestamptz not null default now(),
  -- At most this many broadcasts a second (0: one per commit).
  broadcasts_per_second smallint not null default 4 check (broadcasts_per_second between 0 and 50),
  -- When its last broadcast went out, the DataKeys changed since then, and when they must go out.
  broadcast_sent_at timestamptz,
  broadcast_pending text[] not null default '{}',
  broadcast_due_at timestamptz,
  history_days integer check (history_days between 1 and 3650)
) with (fillfactor = 70); -- last_ingested_at is updated at the ingest rate: keep those updates HOT
create index datasources_workspace_id_idx on public.datasources (workspace_id);

-- True when the current user has one of `roles` in the datasource's workspace.
create function private.has_datasource_role(p_datasource_id uuid, p_roles text[])
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.datasources d
    join public.workspace_members m on m.workspace_id = d.workspace_id
    where d.id = p_datasource_id
      and m.user_id = (select auth.uid())
      and m.role = any (p_roles)
  );
$$;
revoke all on function private.has_datasource_role(uuid, text[]) from public;
grant execute on function private.has_datasource_role(uuid, text[]) to authenticated;

alter table public.datasources enable row level security;

revoke all on table public.datasources from anon, authenticated, service_role;
grant select, delete on table public.datasources to authenticated;
grant insert (id, workspace_id, name, enabled, keep_history, broadcasts_per_second, history_days)
  on table public.datasources to authenticated;
grant update (name, enabled, keep_history, broadcasts_per_second, history_days)
  on table public.datasources to authenticated;
grant select, insert, update, delete on table public.datasources to service_role;

-- Members see their workspaces' datasources.
create policy datasources_select_members on public.datasources
for select to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor', 'viewer']));

-- Owners and editors create datasources.
create policy datasources_insert_editors on public.datasources
for insert to authenticated
with check (private.has_workspace_role(workspace_id, array['owner', 'editor']));

-- Owners and editors change datasources (within their workspace).
create policy datasources_update_editors on public.datasources
for update to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor']))
with check (private.has_workspace_role(workspace_id, array['owner', 'editor']));

-- Owners and editors delete datasources.
create policy datasources_delete_editors on public.datasources
for delete to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor']));

-- True when `name` is a usable key: a letter, then up to 63 letters, digits,
-- `_` or `-`. Keeps paths such as `motor_stats.rpm` unambiguous in errors.
create function private.is_valid_key_name(name text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select name is not null and name ~ '^[A-Za-z][A-Za-z0-9_-]{0,63}$';
$$;
revoke all on function private.is_valid_key_name(text) from public;
grant execute on function private.is_valid_key_name(text) to authenticated, service_role;

-- True when `settings` holds two distinct valid key names under `first` and `second`.
create function private.has_two_sub_keys(settings jsonb, first text, second text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select jsonb_typeof(settings -> first) = 'string'
    and jsonb_typeof(settings -> second) = 'string'
    and private.is_valid_key_name(settings ->> first)
    and private.is_valid_key_name(settings ->> second)
    and settings ->> first <> settings ->> second;
$$;
revoke all on function private.has_two_sub_keys(jsonb, text, text) from public;
grant execute on function private.has_two_sub_keys(jsonb, text, text) to authenticated, service_role;

-- A widget linked to a datasource: its type and settings decide what value
-- its DataKey accepts. The database rejects settings that do not fit the type.
create table public.widgets (
  id uuid primary key default gen_random_uuid(),
  datasource_id uuid not null references public.datasources (id) on delete cascade,
  name text not null check (length(trim(name)) between 1 and 200),
  widget_type text not null
    check (widget_type in ('SingleData', 'DoubleData', 'BarChart', 'LineChart')),
  data_key text not null constraint widgets_data_key_valid check (private.is_valid_key_name(data_key)),
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint widgets_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint widgets_settings_fit_type check (
    case widget_type
      when 'SingleData' then true
      when 'DoubleData' then private.has_two_sub_keys(settings, 'primarySubKey', 'secondarySubKey')
      else private.has_two_sub_keys(settings, 'labelsKey', 'valuesKey')
    end
  )
);
create index widgets_datasource_id_idx on public.widgets (datasource_id);

-- Bumps the datasource's config_version when its widgets change, so the
-- function rebuilds its validator instead of trusting a cached one.
create function private.bump_datasource_config_version()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.datasources d
  set config_version = d.config_version + 1
  where d.id in (new.datasource_id, old.datasource_id);
  return null;
end;
$$;
revoke all on function private.bump_datasource_config_version() from public;

create trigger widgets_bump_config_version
after insert or update or delete on public.widgets
for each row execute function private.bump_datasource_config_version();

-- Widgets sharing a DataKey: the value must satisfy all of them, so the
-- database refuses a widget that no value could satisfy together with the
-- others on its DataKey. Chart and DoubleData widgets each read their own
-- sub-keys from the value (a shared value holds the union of them); what
-- cannot be reconciled is a SingleData (a number or a string) next to an
-- object widget, or a sub-key one widget reads as a scalar and another as an
-- array. The function's data_key_shape.ts applies the same rules.

-- The sub-keys a widget reads as scalars (DoubleData) or as arrays (charts).
create function private.widget_sub_keys(widget_type text, settings jsonb, arrays boolean)
returns text[]
language sql
immutable
set search_path = ''
as $$
  select case
    when widget_type = 'DoubleData' and not arrays
      then array[settings ->> 'primarySubKey', settings ->> 'secondarySubKey']
    when widget_type in ('BarChart', 'LineChart') and arrays
      then array[settings ->> 'labelsKey', settings ->> 'valuesKey']
    else '{}'::text[]
  end;
$$;
revoke all on function private.widget_sub_keys(text, jsonb, boolean) from public;

-- Refuses (check_violation) a widget that conflicts with another widget on the
-- same DataKey of the same datasource. Locks the datasource row first, so two
-- concurrent inserts cannot each miss the other.
create function private.refuse_conflicting_widget()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_other record;
begin
  perform 1 from public.datasources d where d.id = new.datasource_id for update;
  for v_other in
    select o.name, o.widget_type, o.settings
    from public.widgets o
    where o.datasource_id = new.datasource_id and o.data_key = new.data_key and o.id <> new.id
  loop
    if (v_other.widget_type = 'SingleData') <> (new.widget_type = 'SingleData') then
      raise exception 'Widget "%" cannot share DataKey "%" with widget "%": a SingleData takes a number or a string, a % an object',
        new.name, new.data_key, v_other.name,
        case when new.widget_type = 'SingleData' then v_other.widget_type else new.widget_type end
        using errcode = '23514';
    end if;
    if private.widget_sub_keys(new.widget_type, new.settings, false)
        && private.widget_sub_keys(v_other.widget_type, v_other.settings, true)
      or private.widget_sub_keys(new.widget_type, new.settings, true)
        && private.widget_sub_keys(v_other.widget_type, v_other.settings, false) then
      raise exception 'Widget "%" cannot share DataKey "%" with widget "%": a sub-key would be a scalar for one and an array for the other',
        new.name, new.data_key, v_other.name
        using errcode = '23514';
    end if;
  end loop;
  return new;
end;
$$;
revoke all on function private.refuse_conflicting_widget() from public;

create trigger widgets_refuse_conflicting
before insert or update of datasource_id, widget_type, data_key, settings on public.widgets
for each row execute function private.refuse_conflicting_widget();

alter table public.widgets enable row level security;

revoke all on table public.widgets from anon, authenticated, service_role;
grant select, delete on table public.widgets to authenticated;
grant insert (id, datasource_id, name, widget_type, data_key, settings) on table public.widgets to authenticated;
grant update (name, widget_type, data_key, settings) on table public.widgets to authenticated;
grant select, insert, update, delete on table public.widgets to service_role;

-- Members see the widgets of their workspaces' datasources.
create policy widgets_select_members on public.widgets
for select to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor', 'viewer']));

-- Owners and editors link widgets.
create policy widgets_insert_editors on public.widgets
for insert to authenticated
with check (private.has_datasource_role(datasource_id, array['owner', 'editor']));

-- Owners and editors change widgets.
create policy widgets_update_editors on public.widgets
for update to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor']))
with check (private.has_datasource_role(datasource_id, array['owner', 'editor']));

-- Owners and editors unlink widgets.
create policy widgets_delete_editors on public.widgets
for delete to authenticated
using (private.has_datasource_role(datasource_id, array['owner', 'editor']));
