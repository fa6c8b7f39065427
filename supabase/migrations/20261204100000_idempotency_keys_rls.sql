-- Row level security on every table (issue 20): private.idempotency_keys was
-- the one table without it. Enabled with no policy, so that no role but its
-- owner (the write functions, security definer) reads or writes it, even if
-- a grant or an exposed schema ever reached it.
alter table private.idempotency_keys enable row level security;
