-- The API roles hold only what they need (issue 12). Supabase's default
-- privileges grant anon and authenticated every privilege on each new table,
-- sequence and function in public. The earlier migrations revoked them table
-- by table and function by function, but not on the identity sequence of
-- datasource_readings: with usage and update on it, either role could
-- setval() it to its maximum (every history write fails from then on) or back
-- to 1 (duplicate keys). tests/database/grants_test.ts compares every
-- privilege of anon and authenticated in public and private with an allow-list.

-- Inserts into the identity column need no privilege on its sequence, and
-- only ingest_write and ingest_write_batch (security definer) insert there.
revoke all on sequence public.datasource_readings_id_seq from anon, authenticated;

-- From now on, objects the migrations create in public grant the API roles
-- nothing until a migration grants it, and functions are not executable by
-- PUBLIC by default: what a feature exposes is always an explicit grant.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
alter default privileges in schema public revoke all on functions from anon, authenticated;
alter default privileges revoke execute on functions from public;
