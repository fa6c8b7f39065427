-- Workspace membership rules (issue 12): membership alone grants access, and
-- a workspace always keeps at least one owner.

-- Members see their workspaces. The creator also sees a new workspace within
-- the transaction that creates it, so that `insert ... returning` (what
-- supabase-js's insert().select() sends) works: PostgreSQL checks this policy
-- on the returned row before the trigger below has made the creator its
-- owner. The policy used to admit `created_by = auth.uid()` for good, which
-- let a creator removed from the workspace keep reading it. created_at and
-- created_by are not writable by the API roles (column grants), so a row
-- matches `created_at = now()` only in the transaction that inserted it.
drop policy workspaces_select_members on public.workspaces;
create policy workspaces_select_members on public.workspaces
for select to authenticated
using (
  private.has_workspace_role(id, array['owner', 'editor', 'viewer'])
  or (created_by = (select auth.uid()) and created_at = now())
);

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
