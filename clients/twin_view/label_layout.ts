/**
 * Which of the scene's labels to show, so that none covers another whatever
 * the camera: the widgets' titles and the charts' column labels are boxes on
 * the screen; nearer ones win, and a chart's row of labels is thinned to every
 * k-th label when its neighbours would touch (at 8 bars, on a phone, seen from
 * the side).
 *
 * @module
 */

/** A label's box on the screen, in CSS pixels. */
export interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/** A label that could be shown: its box, its rank (0 first: titles before column labels) and its distance from the camera. */
export interface Candidate {
  box: Box;
  priority: number;
  depth: number;
}

/** True when `a` and `b` come closer than `gap` pixels (touching counts as overlapping with a positive gap). */
export function overlaps(a: Box, b: Box, gap = 0): boolean {
  return a.left < b.right + gap && b.left < a.right + gap && a.top < b.bottom + gap && b.top < a.bottom + gap;
}

/**
 * The step that thins a row of labels: the smallest k such that, of every
 * k-th label from the first, no two neighbours (among those on the screen,
 * `null` the others) come closer than `gap`. A row's labels sit in order
 * along one line however it is projected, so neighbours are enough.
 */
export function rowStep(boxes: readonly (Box | null)[], gap = 0): number {
  for (let step = 1; step < boxes.length; step++) {
    let previous: Box | null = null;
    let fits = true;
    for (let i = 0; i < boxes.length && fits; i += step) {
      const box = boxes[i];
      if (!box) continue;
      if (previous && overlaps(previous, box, gap)) fits = false;
      previous = box;
    }
    if (fits) return step;
  }
  return Math.max(boxes.length, 1);
}

/**
 * Which candidates to show: taken by priority, then nearest first, each shown
 * unless it comes closer than `gap` to one shown before it. So the labels
 * shown never overlap, and a label is hidden only by a nearer (or more
 * important) one.
 */
export function placeLabels(candidates: readonly Candidate[], gap = 0): boolean[] {
  const order = candidates.map((_, i) => i).sort((a, b) =>
    candidates[a]!.priority - candidates[b]!.priority || candidates[a]!.depth - candidates[b]!.depth || a - b
  );
  const shown: boolean[] = candidates.map(() => false);
  const placed: Box[] = [];
  for (const i of order) {
    const box = candidates[i]!.box;
    if (placed.some((other) => overlaps(other, box, gap))) continue;
    placed.push(box);
    shown[i] = true;
  }
  return shown;
}
