/** The scene's labels: shown ones never overlap, the nearer win, a chart's row is thinned evenly. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Box, overlaps, placeLabels, rowStep } from "../../clients/twin_view/label_layout.ts";

const box = (left: number, top: number, width = 60, height = 30): Box => ({
  left,
  top,
  right: left + width,
  bottom: top + height,
});

Deno.test("boxes overlap when they share area or come closer than the gap", () => {
  assert.equal(overlaps(box(0, 0), box(59, 29)), true);
  assert.equal(overlaps(box(0, 0), box(60, 0)), false, "touching edges");
  assert.equal(overlaps(box(0, 0), box(61, 0), 2), true, "1 px apart, 2 px gap");
  assert.equal(overlaps(box(0, 0), box(0, 40), 2), false);
});

Deno.test("of overlapping labels the nearer is shown, the farther hidden; titles (priority 0) before column labels", () => {
  const shown = placeLabels([
    { box: box(0, 0), priority: 0, depth: 20 },
    { box: box(30, 10), priority: 0, depth: 12 },
    { box: box(200, 0), priority: 0, depth: 30 },
    { box: box(100, 10), priority: 1, depth: 1 },
    { box: box(95, 10), priority: 0, depth: 40 },
  ]);
  assert.deepEqual(shown, [false, true, true, false, true]);
});

Deno.test("labels seen one behind the other (a row seen end-on): only those clear of nearer ones", () => {
  const stacked = [0, 1, 2, 3].map((i) => ({ box: box(100 + i, 100 - i * 8), priority: 0, depth: 10 + i * 4 }));
  assert.deepEqual(placeLabels(stacked), [true, false, false, false]);
});

Deno.test("whatever the boxes, the labels shown never overlap, and each hidden one overlaps one shown", () => {
  const candidate = fc.record({
    box: fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 150 }))
      .map(([l, t, w]) => box(l, t, w, 30)),
    priority: fc.integer({ min: 0, max: 1 }),
    depth: fc.double({ min: 0, max: 100, noNaN: true }),
  });
  fc.assert(fc.property(fc.array(candidate, { maxLength: 30 }), (candidates) => {
    const shown = placeLabels(candidates, 2);
    const boxes = candidates.map((c) => c.box);
    const visible = boxes.filter((_, i) => shown[i]);
    visible.forEach((a, i) => visible.slice(i + 1).forEach((b) => assert.ok(!overlaps(a, b, 2))));
    boxes.forEach((b, i) => assert.ok(shown[i] || visible.some((a) => overlaps(a, b, 2))));
  }));
});

Deno.test("a row of labels keeps every k-th, the smallest k whose neighbours do not touch", () => {
  const row = (spacing: number, n = 8) => Array.from({ length: n }, (_, i) => box(i * spacing, 0, 60));
  assert.equal(rowStep(row(70), 4), 1);
  assert.equal(rowStep(row(31), 4), 3, "62 px apart touch within the gap, 93 do not");
  assert.equal(rowStep(row(2)), 8, "all in one spot: the first alone");
  assert.equal(rowStep([]), 1);
  // Labels off the screen (null) leave gaps that the others need not fill.
  assert.equal(rowStep([box(0, 0), null, box(30, 0), box(90, 0)]), 3);
  // A row seen from the side: the boxes come closer together; a row seen from behind runs right to left.
  assert.equal(rowStep(row(-31), 4), 3);
});
