import assert from "node:assert/strict";
import { createStdoutSink } from "../../supabase/functions/ingest-data/log_sink.ts";

Deno.test("stdout sink: one line per call, whole even when the output takes it in pieces", () => {
  const written: number[] = [];
  const sink = createStdoutSink({
    writeSync(bytes) {
      const n = Math.min(bytes.byteLength, 3);
      written.push(...bytes.subarray(0, n));
      return n;
    },
  });
  sink('{"status":200}');
  sink('{"status":400}');
  assert.equal(new TextDecoder().decode(new Uint8Array(written)), '{"status":200}\n{"status":400}\n');
});

Deno.test("stdout sink: a failing output drops the line and never throws", () => {
  const sink = createStdoutSink({
    writeSync() {
      throw new Deno.errors.BrokenPipe("closed");
    },
  });
  assert.doesNotThrow(() => sink('{"status":200}'));
});
