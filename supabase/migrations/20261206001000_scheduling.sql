-- What runs on a clock: the history's day partitions and retention
-- (private.maintain_history), its hour rollups (private.roll_up_history) and
-- the flush of held-back broadcasts (private.flush_broadcasts). Each is safe
-- to run at any time and twice. Last, since the upkeep reads every retention
-- (datasources.history_days, workspace_limits.history_days_max).

-- The day partitions for now: from yesterday to a week ahead.
select private.maintain_history();

-- On Supabase, pg_cron runs them: the flush every second, the backstop for
-- held-back broadcasts (pg_cron 1.5 and later; every minute on older ones, which
-- have no seconds); the upkeep every hour; the rollups every ten minutes, so a
-- backfill shows in hour buckets within ten minutes. Where pg_cron is not
-- installed, say so: deno task dev runs all three by itself, and the function
-- flushes after its commits.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: pending broadcasts are flushed by the function and deno task dev only; '
      'run select private.maintain_history() daily and select private.roll_up_history() every few minutes, or '
      'enable pg_cron and run this migration''s cron.schedule calls';
    return;
  end if;
  begin
    perform cron.schedule('ingest-flush-broadcasts', '1 seconds', 'select private.flush_broadcasts()');
  exception when others then
    perform cron.schedule('ingest-flush-broadcasts', '* * * * *', 'select private.flush_broadcasts()');
  end;
  perform cron.schedule('ingest-maintain-history', '17 * * * *', 'select private.maintain_history()');
  perform cron.schedule('ingest-roll-up-history', '*/10 * * * *', 'select private.roll_up_history()');
end;
$$;
