-- Group commit: the function coalesces concurrent requests into one call and
-- one commit, instead of one transaction (and one WAL flush) per request.

-- Stores several requests' values in one transaction. Each request stays
-- all-or-nothing: it runs ingest_write in its own subtransaction, and one that
-- fails is rolled back alone and reported with its SQLSTATE, while the others
-- commit. Returns one result per request, in order:
-- `{"ok": true, "result": {...}}` or `{"ok": false, "code": "PT401", "message": "..."}`.
create function public.ingest_write_batch(p_requests jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_request jsonb;
  v_results jsonb[] := '{}';
begin
  for v_request in select r from jsonb_array_elements(p_requests) r loop
    begin
      v_results := v_results || jsonb_build_object(
        'ok', true,
        'result', public.ingest_write(
          (v_request ->> 'datasource_id')::uuid,
          (v_request ->> 'key_id')::uuid,
          v_request -> 'values',
          (v_request ->> 'observed_at')::timestamptz
        )
      );
    exception
      when others then
        v_results := v_results || jsonb_build_object('ok', false, 'code', sqlstate, 'message', sqlerrm);
    end;
  end loop;
  return to_jsonb(v_results);
end;
$$;
revoke all on function public.ingest_write_batch(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.ingest_write_batch(jsonb) to service_role;
