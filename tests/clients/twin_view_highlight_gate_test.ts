/** The page highlights changes, never the first read (every widget flashed on load). */
import assert from "node:assert/strict";
import { createHighlightGate } from "../../clients/twin_view/highlight_gate.ts";

Deno.test("nothing is highlighted before the first live; every change afterwards, across reconnections", () => {
  const gate = createHighlightGate();
  gate.status("connecting");
  assert.equal(gate.initial, true);
  assert.deepEqual(gate.highlighted(["temperature", "motor_stats"]), []);
  gate.status("live");
  assert.equal(gate.initial, false);
  assert.deepEqual(gate.highlighted(["temperature"]), ["temperature"]);
  gate.status("reconnecting");
  assert.deepEqual(gate.highlighted(["motor_stats"]), ["motor_stats"], "values posted while away are changes");
});
