/// <reference lib="dom" />
/**
 * The scene's labels as HTML over the canvas, each following a point of the
 * 3D scene: crisp at any zoom, at a font size the page sets (text drawn on a
 * texture shrinks with the object). After every frame each label is placed at
 * its point's projection and hidden when the point is off the screen, deep in
 * the fog, behind a widget (a ray from the camera meets one first) or covered
 * by a nearer label (label_layout.ts); a chart's row of labels is thinned to every k-th
 * label when neighbours would touch. Hidden labels fade out.
 *
 * @module
 */
// @ts-types="@types/three"
import * as THREE from "three";
import { type Box, placeLabels, rowStep } from "./label_layout.ts";

/** Where a label sits: its bottom centre on its point (`above`) or its top centre (`below`). */
export type Placement = "above" | "below";

/** How a label is laid out: `priority` 0 wins over 1; the labels of one `row` (in order) are thinned together. */
export interface LabelOptions {
  placement: Placement;
  priority: number;
  row?: object;
}

/** A label in the layer. */
export interface SceneLabel {
  readonly element: HTMLElement;
}

/** The labels of one scene, in an element laid over its canvas. */
export interface LabelLayer {
  readonly element: HTMLElement;
  /** Adds `element` as the label of `anchor` (an object of the scene, followed as it moves). */
  add(anchor: THREE.Object3D, element: HTMLElement, options: LabelOptions): SceneLabel;
  /** Takes a label away. */
  remove(label: SceneLabel): void;
  /**
   * Places the labels for `camera` (after a render: its matrices are current), hiding those `occluders` cover
   * and those farther than `farthest` (where the fog hides their objects).
   */
  layout(camera: THREE.Camera, occluders: readonly THREE.Object3D[], farthest: number): void;
}

/** Pixels between a label and its point, and between labels. */
const OFFSET = 4;
const GAP = 2;

/** What a layout projects with: the layer's size in CSS pixels, what hides labels and how far they show. */
interface View {
  width: number;
  height: number;
  occluders: THREE.Object3D[];
  farthest: number;
}

interface Entry extends LabelOptions {
  element: HTMLElement;
  anchor: THREE.Object3D;
  width: number;
  height: number;
  measured: boolean;
  left: number;
  top: number;
  shown: boolean;
}

/** An empty layer: put its `element` over the canvas (the scene's container is positioned). */
export function createLabelLayer(): LabelLayer {
  const element = document.createElement("div");
  element.className = "labels";
  // The text panel says the same: screen readers read it there.
  element.setAttribute("aria-hidden", "true");
  const entries: Entry[] = [];
  const raycaster = new THREE.Raycaster();
  const eye = new THREE.Vector3();
  const point = new THREE.Vector3();

  /** The label's box on the screen, or null when its point is behind the camera, off the screen, too far or hidden. */
  function project(entry: Entry, camera: THREE.Camera, view: View) {
    entry.anchor.getWorldPosition(point);
    const depth = point.distanceTo(eye);
    if (depth > view.farthest) return null;
    const seen = point.clone().applyMatrix4(camera.matrixWorldInverse);
    if (seen.z > -0.01) return null;
    const ndc = seen.applyMatrix4((camera as THREE.PerspectiveCamera).projectionMatrix);
    if (!(Math.abs(ndc.x) <= 1 && Math.abs(ndc.y) <= 1)) return null;
    raycaster.set(eye, point.clone().sub(eye).normalize());
    raycaster.far = depth - 0.05;
    if (raycaster.intersectObjects(view.occluders, false).length > 0) return null;
    const x = (ndc.x + 1) / 2 * view.width;
    const y = (1 - ndc.y) / 2 * view.height;
    const left = Math.round(x - entry.width / 2);
    const top = Math.round(entry.placement === "above" ? y - entry.height - OFFSET : y + OFFSET);
    return { box: { left, top, right: left + entry.width, bottom: top + entry.height }, depth };
  }

  return {
    element,
    add(anchor, label, options) {
      label.classList.add("label", "hidden");
      element.append(label);
      const entry: Entry = {
        ...options,
        element: label,
        anchor,
        width: 0,
        height: 0,
        measured: false,
        left: NaN,
        top: NaN,
        shown: false,
      };
      entries.push(entry);
      return entry;
    },
    remove(label) {
      const i = entries.findIndex((e) => e.element === label.element);
      if (i >= 0) entries.splice(i, 1);
      label.element.remove();
    },
    layout(camera, occluders, farthest) {
      const view = { width: element.clientWidth, height: element.clientHeight, occluders: [...occluders], farthest };
      for (const entry of entries) {
        if (entry.measured) continue;
        entry.width = entry.element.offsetWidth;
        entry.height = entry.element.offsetHeight;
        entry.measured = entry.width > 0;
      }
      camera.getWorldPosition(eye);
      const placed = entries.map((entry) => project(entry, camera, view));
      thinRows(entries, placed);
      const candidates = placed.flatMap((p, i) =>
        p ? [{ i, box: p.box, depth: p.depth, priority: entries[i]!.priority }] : []
      );
      const shown = placeLabels(candidates, GAP);
      const visible = new Set(candidates.filter((_, k) => shown[k]).map((c) => c.i));
      entries.forEach((entry, i) => write(entry, placed[i]?.box ?? null, visible.has(i)));
    },
  };
}

/** Hides the labels a row's step leaves out (every k-th of those on the screen stays). */
function thinRows(entries: readonly Entry[], placed: ({ box: Box } | null)[]): void {
  const rows = new Map<object, number[]>();
  entries.forEach((entry, i) => {
    if (entry.row) rows.set(entry.row, [...rows.get(entry.row) ?? [], i]);
  });
  for (const members of rows.values()) {
    const step = rowStep(members.map((i) => placed[i]?.box ?? null), OFFSET);
    members.forEach((i, k) => {
      if (k % step !== 0) placed[i] = null;
    });
  }
}

/** Moves and shows or hides a label, touching the page only for what changed. */
function write(entry: Entry, box: Box | null, shown: boolean): void {
  if (box && (box.left !== entry.left || box.top !== entry.top)) {
    entry.left = box.left;
    entry.top = box.top;
    entry.element.style.transform = `translate(${box.left}px, ${box.top}px)`;
  }
  if (shown !== entry.shown) {
    entry.shown = shown;
    entry.element.classList.toggle("hidden", !shown);
  }
}
