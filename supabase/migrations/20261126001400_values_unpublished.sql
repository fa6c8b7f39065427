-- datasource_values leaves the supabase_realtime publication (issue 12).
-- Supabase Realtime does not apply row level security to postgres_changes
-- DELETE events: it sends each one, with the old row's primary key, to every
-- subscriber of the table. Here that key is (datasource_id, data_key), so
-- deleting a datasource (its values go with it) told any signed-in
-- subscriber, member or not, the datasource's id and each of its DataKeys.
-- Dashboards receive values as broadcasts on the private channel
-- `datasource:<id>` (membership checked by the policy on realtime.messages),
-- which is the Realtime contract; postgres_changes on this table is not.
alter publication supabase_realtime drop table public.datasource_values;
