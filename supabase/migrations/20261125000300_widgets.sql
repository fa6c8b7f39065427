-- Widgets: what a dashboard shows, and so what shape each DataKey must have.

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
