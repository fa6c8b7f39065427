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
