/** The scene's scale: any JSON number lands in 0..1, never NaN, whatever the span of the values. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lineScale, unitScale } from "../../clients/twin_view/scale.ts";

const MAX = Number.MAX_VALUE;

Deno.test("a domain wider than Number.MAX_VALUE still spans 0..1", () => {
  const share = unitScale([-MAX, 0, MAX]);
  assert.deepEqual([share(-MAX), share(0), share(MAX)], [0, 0.5, 1]);
  assert.deepEqual([unitScale([0, 1e308, -1e308])(1e308), unitScale([0, 5e-324])(5e-324)], [1, 1]);
});

Deno.test("ordinary values keep their proportions; outside values are clamped", () => {
  const share = unitScale([0, 112, 124, 98]);
  assert.equal(share(62), 0.5);
  assert.deepEqual([share(-5), share(200)], [0, 1]);
  assert.equal(unitScale([-10, 30])(0), 0.25);
});

Deno.test("non-finite values and a domain without width give 0 or 1, never NaN", () => {
  const share = unitScale([0, Infinity, NaN, 10, -Infinity]);
  assert.deepEqual([share(Infinity), share(-Infinity), share(NaN), share(5)], [1, 0, 0, 0.5]);
  assert.deepEqual([unitScale([0, 0])(0), unitScale([])(3), unitScale([7])(7)], [0, 0, 0]);
});

Deno.test("any doubles: every share is a number in 0..1, monotonic in the value", () => {
  fc.assert(fc.property(fc.array(fc.double(), { minLength: 1 }), fc.double(), fc.double(), (domain, a, b) => {
    const share = unitScale(domain);
    for (const value of [...domain, a, b]) {
      const s = share(value);
      assert.ok(s >= 0 && s <= 1, `${value} -> ${s}`);
    }
    if (a <= b) assert.ok(share(a) <= share(b), `${a} -> ${share(a)}, ${b} -> ${share(b)}`);
  }));
});

Deno.test("lines span their own values (0 need not be in them); a flat line runs along the middle", () => {
  const share = lineScale([1.9, 2.8, 2.2]);
  assert.deepEqual([share(1.9), share(2.8)], [0, 1]);
  assert.ok(Math.abs(share(2.35) - 0.5) < 1e-12);
  assert.deepEqual([lineScale([5, 5])(5), lineScale([])(3), lineScale([NaN, 7])(7)], [0.5, 0.5, 0.5]);
  assert.deepEqual([lineScale([5])(Infinity), lineScale([5])(-Infinity), lineScale([5])(NaN)], [1, 0, 0]);
  assert.deepEqual([lineScale([-MAX, MAX])(0), lineScale([-MAX, MAX])(MAX)], [0.5, 1]);
});
