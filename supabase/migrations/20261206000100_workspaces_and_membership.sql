-- Workspaces and their members: the unit of tenancy that every other table
-- hangs from, and the role checks the row level security policies share.
-- Membership alone grants access, and a workspace always keeps an owner.

-- Helpers live in a schema PostgREST does not expose, so they cannot be
-- called over the API even though policies run them as the calling user.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

-- The API roles hold only what they need. Supabase's default privileges grant
-- anon and authenticated every privilege on each new table, sequence and
-- function in public (a sequence's usage and update would let them setval()
-- it), and PUBLIC may execute every new function. So objects these migrations
-- create grant the API roles nothing until a migration grants it: what a
-- feature exposes is always an explicit grant. tests/database/grants_test.ts
-- compares every privilege of anon and authenticated with an allow-list.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
alter default privileges in schema public revoke all on functions from anon, authenticated;
alter default privileges revoke execute on functions from public;

-- A customer's tenancy: datasources, widgets and keys belong to one workspace.
create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(trim(name)) between 1 and 200),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index workspaces_created_by_idx on public.workspaces (created_by);

-- Who belongs to a workspace, and with which role.
create table public.workspace_members (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'editor', 'viewer')),
  created_at timestamptz not null default now(),
  primary key (workspace_id, user_id)
);
create index workspace_members_user_id_idx on public.workspace_members (user_id);

-- True when the current user has one of `roles` in the workspace. Security
-- definer so that policies on workspace_members can use it without recursing.
create function private.has_workspace_role(p_workspace_id uuid, p_roles text[])
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.workspace_members m
    where m.workspace_id = p_workspace_id
      and m.user_id = (select auth.uid())
      and m.role = any (p_roles)
  );
$$;
revoke all on function private.has_workspace_role(uuid, text[]) from public;
grant execute on function private.has_workspace_role(uuid, text[]) to authenticated;

-- Whoever creates a workspace becomes its owner, so a new workspace is never orphaned.
create function private.add_workspace_creator_as_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.created_by is not null then
    insert into public.workspace_members (workspace_id, user_id, role)
    values (new.id, new.created_by, 'owner');
  end if;
  return new;
end;
$$;
revoke all on function private.add_workspace_creator_as_owner() from public;

create trigger workspaces_add_creator_as_owner
after insert on public.workspaces
for each row execute function private.add_workspace_creator_as_owner();

-- Refuses to remove or demote the last owner of a workspace, so that someone
-- can always manage it. Removal goes through when the workspace itself is
-- being deleted (its members go with it), and when the user is deleted from
-- auth.users (an account deletion must not be blocked; the service role can
-- then name a new owner). Locks the workspace row first, so that two owners
-- demoting each other at once are decided one after the other.
create function private.keep_an_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role <> 'owner'
     or (tg_op = 'UPDATE' and new.role = 'owner' and new.workspace_id = old.workspace_id) then
    return coalesce(new, old);
  end if;
  perform 1 from public.workspaces w where w.id = old.workspace_id for no key update;
  if not found then
    return coalesce(new, old); -- the workspace is being deleted
  end if;
  if tg_op = 'DELETE' and not exists (select 1 from auth.users u where u.id = old.user_id) then
    return old; -- the user is being deleted
  end if;
  if not exists (
    select 1 from public.workspace_members m
    where m.workspace_id = old.workspace_id and m.role = 'owner' and m.user_id <> old.user_id
  ) then
    raise exception 'Cannot remove the last owner of a workspace: make another member owner first, or delete the workspace'
      using errcode = '23514';
  end if;
  return coalesce(new, old);
end;
$$;
revoke all on function private.keep_an_owner() from public;

create trigger workspace_members_keep_an_owner
before update or delete on public.workspace_members
for each row execute function private.keep_an_owner();

alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;

revoke all on table public.workspaces, public.workspace_members from anon, authenticated, service_role;
grant select, insert (id, name), update (name), delete on table public.workspaces to authenticated;
grant select, insert, update (role), delete on table public.workspace_members to authenticated;
grant select, insert, update, delete on table public.workspaces, public.workspace_members to service_role;

-- Members see their workspaces. The creator also sees a new workspace within
-- the transaction that creates it, so that `insert ... returning` (what
-- supabase-js's insert().select() sends) works: PostgreSQL checks this policy
-- on the returned row before the trigger above has made the creator its
-- owner. Only then: a creator removed from the workspace must not keep
-- reading it. created_at and created_by are not writable by the API roles
-- (column grants), so a row matches `created_at = now()` only in the
-- transaction that inserted it.
create policy workspaces_select_members on public.workspaces
for select to authenticated
using (
  private.has_workspace_role(id, array['owner', 'editor', 'viewer'])
  or (created_by = (select auth.uid()) and created_at = now())
);

-- Any signed-in user may create a workspace in their own name (and becomes its owner).
create policy workspaces_insert_authenticated on public.workspaces
for insert to authenticated
with check (created_by = (select auth.uid()));

-- Only owners rename a workspace.
create policy workspaces_update_owners on public.workspaces
for update to authenticated
using (private.has_workspace_role(id, array['owner']))
with check (private.has_workspace_role(id, array['owner']));

-- Only owners delete a workspace.
create policy workspaces_delete_owners on public.workspaces
for delete to authenticated
using (private.has_workspace_role(id, array['owner']));

-- Members see who else is in their workspaces.
create policy workspace_members_select_members on public.workspace_members
for select to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor', 'viewer']));

-- Owners add members.
create policy workspace_members_insert_owners on public.workspace_members
for insert to authenticated
with check (private.has_workspace_role(workspace_id, array['owner']));

-- Owners change roles.
create policy workspace_members_update_owners on public.workspace_members
for update to authenticated
using (private.has_workspace_role(workspace_id, array['owner']))
with check (private.has_workspace_role(workspace_id, array['owner']));

-- Owners remove members.
create policy workspace_members_delete_owners on public.workspace_members
for delete to authenticated
using (private.has_workspace_role(workspace_id, array['owner']));
