/// <reference lib="dom" />
/**
 * The 3D object of each widget type: SingleData a machine with a readout, its
 * last hour's sparkline and a gauge, DoubleData a panel with both sub-keys and
 * their sparklines, BarChart 3D bars, LineChart a line through its points.
 * Readouts are drawn on canvases; the widget's title and the charts' column
 * labels are HTML labels over the scene (labels.ts).
 *
 * @module
 */
// @ts-types="@types/three"
import * as THREE from "three";
import { formatValue, type Reading, readingsOf, shortLabels } from "./format.ts";
import type { LabelLayer, SceneLabel } from "./labels.ts";
import { lineScale, unitScale } from "./scale.ts";
import { sparklinePath, type TrendPoint, trendRange } from "./sparkline.ts";
import { TREND_WINDOW_MS, type Trends } from "./trends.ts";
import type { TwinWidget } from "./types.ts";

/** One widget's object: `show` draws a value, `drawTrends` its sparklines again, `glow` the highlight materials. */
export interface WidgetView {
  widget: TwinWidget;
  group: THREE.Group;
  glow: THREE.MeshStandardMaterial[];
  show(value: unknown): void;
  /** Draws the sparklines (and the gauge's range) as the trends are at `now` (epoch ms). */
  drawTrends(now: number): void;
  glowUntil: number;
}

/** What the objects draw with: the scene's labels and the datasource's trends. */
export interface WidgetContext {
  labels: LabelLayer;
  trends: Trends;
}

/** How high a widget's title floats: above the tallest object. */
export const TITLE_HEIGHT = 3.35;
/** Where it floats: above the back of the plinth, so that from above it does not cover a chart's board. */
const TITLE_DEPTH = -1;

/** The object of `widget`, in `color`, showing no value yet. */
export function createWidgetView(widget: TwinWidget, color: number, context: WidgetContext): WidgetView {
  const group = new THREE.Group();
  const plinth = new THREE.MeshStandardMaterial({ color: 0x334155, roughness: 0.8 });
  const base = solid(new THREE.BoxGeometry(3.4, 0.16, 2.4), plinth);
  base.position.y = 0.08;
  group.add(base);
  const anchor = new THREE.Object3D();
  anchor.position.set(0, TITLE_HEIGHT, TITLE_DEPTH);
  group.add(anchor);
  context.labels.add(anchor, titleElement(widget), { placement: "above", priority: 0 });

  const parts = widget.widget_type === "SingleData"
    ? singleData(widget, color, context.trends)
    : widget.widget_type === "DoubleData"
    ? doubleData(widget, color, context.trends)
    : chart(widget, color, context.labels);
  group.add(parts.object);
  return { widget, group, glow: [plinth, ...parts.glow], show: parts.show, drawTrends: parts.drawTrends, glowUntil: 0 };
}

type Parts = Pick<WidgetView, "glow" | "show" | "drawTrends"> & { object: THREE.Object3D };

/** A readout row: its text and, when it has any, the points of its sparkline. */
interface ReadoutRow {
  text: string;
  points: readonly TrendPoint[];
}

/** A machine: a housing with a screen (the value over its last hour) and a gauge spanning the last hour's range. */
function singleData(widget: TwinWidget, color: number, trends: Trends): Parts {
  const object = new THREE.Group();
  const housing = new THREE.MeshStandardMaterial({ color: 0x64748b, metalness: 0.3, roughness: 0.5 });
  const body = solid(new THREE.BoxGeometry(2, 1.6, 1.4), housing);
  body.position.y = 0.96;
  object.add(body);
  const screen = readout({ width: 512, height: 368, size: [1.8, 1.3] }, color);
  screen.mesh.position.set(0, 0.96, 0.71);
  object.add(screen.mesh);

  const dial = solid(
    new THREE.CircleGeometry(0.62, 48, 0, Math.PI),
    new THREE.MeshStandardMaterial({ color: 0xe2e8f0, side: THREE.DoubleSide }),
  );
  dial.position.set(0, 1.8, 0);
  object.add(dial);
  const needle = new THREE.Mesh(
    new THREE.BoxGeometry(0.56, 0.05, 0.03),
    new THREE.MeshStandardMaterial({ color }),
  );
  needle.name = "gauge-needle";
  needle.geometry.translate(0.28, 0, 0.02);
  needle.position.set(0, 1.8, 0);
  needle.rotation.z = Math.PI;
  object.add(needle);

  let value: unknown = undefined;
  function draw(now: number) {
    const points = trends.series(widget.data_key)?.points() ?? [];
    screen.draw([{ text: formatValue(widget, value), points }], now);
    // The gauge spans the last hour as the sparkline shows it, and the value itself.
    const range = trendRange(points, [value]);
    if (typeof value !== "number" || !Number.isFinite(value) || !range) return;
    const share = lineScale([range.low, range.high])(value);
    needle.rotation.z = Math.PI * (1 - share * 0.999);
    needle.userData = { low: range.low, high: range.high, share };
  }
  return {
    object,
    glow: [housing],
    show(next) {
      value = next;
      draw(Date.now());
    },
    drawTrends: draw,
  };
}

/** A panel on a post showing the two sub-keys, each over its last hour. */
function doubleData(widget: TwinWidget, color: number, trends: Trends): Parts {
  const object = new THREE.Group();
  const frame = new THREE.MeshStandardMaterial({ color, metalness: 0.2, roughness: 0.6 });
  const post = new THREE.Mesh(new THREE.CylinderGeometry(0.08, 0.08, 1.2), frame);
  post.position.y = 0.76;
  object.add(post);
  const board = solid(new THREE.BoxGeometry(2.7, 1.7, 0.12), frame);
  board.position.y = 2.2;
  object.add(board);
  const face = readout({ width: 512, height: 336, size: [2.5, 1.56] }, color);
  face.mesh.position.set(0, 2.2, 0.07);
  object.add(face.mesh);
  const subKeys = [widget.settings.primarySubKey ?? "", widget.settings.secondarySubKey ?? ""];

  let value: unknown = undefined;
  function draw(now: number) {
    const readings = value === undefined ? null : readingsOf(widget, value);
    const rows = value !== undefined && !readings
      ? [{ text: formatValue(widget, value), points: [] }]
      : subKeys.map((key, i) => ({
        text: `${key}: ${readings?.[i]?.value ?? "–"}`,
        points: trends.series(`${widget.data_key}.${key}`)?.points() ?? [],
      }));
    face.draw(rows, now);
  }
  draw(Date.now());
  return {
    object,
    glow: [frame],
    show(next) {
      value = next;
      draw(Date.now());
    },
    drawTrends: draw,
  };
}

/** BarChart: a bar per label; LineChart: a line through its points; both on a backboard, labelled underneath. */
function chart(widget: TwinWidget, color: number, labels: LabelLayer): Parts {
  const object = new THREE.Group();
  const board = new THREE.MeshStandardMaterial({ color: 0x1e293b, roughness: 0.9 });
  const back = solid(new THREE.BoxGeometry(3.2, 2.8, 0.08), board);
  back.position.set(0, 1.7, -0.9);
  object.add(back);
  const content = new THREE.Group();
  object.add(content);
  const material = new THREE.MeshStandardMaterial({ color, metalness: 0.1, roughness: 0.5 });
  // The chart's column labels are one row: thinned together when they would touch.
  const row = {};
  const column = (anchorX: number, reading: Reading | null, i: number) => {
    const anchor = new THREE.Object3D();
    anchor.position.set(anchorX, 0.17, 1.22);
    content.add(anchor);
    return labels.add(anchor, columnElement(widget, reading, i), { placement: "below", priority: 1, row });
  };
  let columns: SceneLabel[] = [column(0, null, 0)];

  return {
    object,
    glow: [board, material],
    show(value) {
      clear(content);
      for (const label of columns) labels.remove(label);
      const readings = (readingsOf(widget, value) ?? []).slice(0, 48) as (Reading & { value: number })[];
      const step = 2.8 / Math.max(readings.length, 1);
      const x = (i: number) => -1.4 + step * (i + 0.5);
      const short = shortLabels(readings.map((r) => r.label));
      columns = readings.length === 0
        ? [column(0, null, 0)]
        : readings.map((reading, i) => column(x(i), { ...reading, label: short[i]! }, i));
      if (readings.length === 0) return;
      if (widget.widget_type === "BarChart") bars(content, readings, x, step, material);
      else line(content, readings, x, material);
    },
    drawTrends() {},
  };
}

/** Bars from 0 (which the scale includes) to each value. */
function bars(
  content: THREE.Group,
  readings: readonly (Reading & { value: number })[],
  x: (i: number) => number,
  step: number,
  material: THREE.Material,
): void {
  const share = unitScale([0, ...readings.map((r) => r.value)]);
  const y = (v: number) => 0.3 + share(v) * 2.4;
  readings.forEach((r, i) => {
    const height = Math.max(Math.abs(y(r.value) - y(0)), 0.02);
    const bar = solid(new THREE.BoxGeometry(step * 0.7, height, step * 0.7), material);
    bar.position.set(x(i), Math.min(y(r.value), y(0)) + height / 2, 0);
    content.add(bar);
  });
}

/**
 * The series as a line between its lowest and highest value (0 need not be in
 * it: the changes show): a straight tube from each point to the next, through
 * every point exactly, and a dot on each.
 */
function line(
  content: THREE.Group,
  readings: readonly (Reading & { value: number })[],
  x: (i: number) => number,
  material: THREE.Material,
): void {
  const share = lineScale(readings.map((r) => r.value));
  const points = readings.map((r, i) => new THREE.Vector3(x(i), 0.5 + share(r.value) * 2.2, -0.8));
  // Tubes rather than THREE.Line: WebGL draws lines one pixel wide whatever their linewidth.
  const segments = new THREE.InstancedMesh(
    new THREE.CylinderGeometry(0.035, 0.035, 1, 8, 1, true),
    material,
    Math.max(points.length - 1, 0),
  );
  segments.name = "line-segments";
  const up = new THREE.Vector3(0, 1, 0);
  points.slice(1).forEach((to, i) => {
    const from = points[i]!;
    const direction = to.clone().sub(from);
    const length = direction.length();
    const rotation = new THREE.Quaternion().setFromUnitVectors(up, direction.normalize());
    const middle = from.clone().add(to).multiplyScalar(0.5);
    segments.setMatrixAt(i, new THREE.Matrix4().compose(middle, rotation, new THREE.Vector3(1, length, 1)));
  });
  content.add(segments);
  const dots = new THREE.InstancedMesh(new THREE.SphereGeometry(0.07, 12, 8), material, points.length);
  dots.name = "line-points";
  points.forEach((p, i) => dots.setMatrixAt(i, new THREE.Matrix4().makeTranslation(p.x, p.y, p.z)));
  content.add(dots);
}

/** Empties a chart's content: its meshes share the chart's material, so only their geometries go. */
function clear(content: THREE.Group): void {
  for (const child of [...content.children]) {
    content.remove(child);
    (child as THREE.Mesh).geometry?.dispose();
    if (child instanceof THREE.InstancedMesh) child.dispose();
  }
}

/** A mesh that hides the labels behind it. */
function solid(geometry: THREE.BufferGeometry, material: THREE.Material): THREE.Mesh {
  const mesh = new THREE.Mesh(geometry, material);
  mesh.userData.occludes = true;
  return mesh;
}

/** A widget's title label: its name over its DataKey. */
function titleElement(widget: TwinWidget): HTMLElement {
  const element = document.createElement("div");
  element.className = "title";
  element.dataset.widgetId = widget.id;
  const name = document.createElement("strong");
  name.textContent = widget.name;
  const key = document.createElement("code");
  key.textContent = widget.data_key;
  element.append(name, key);
  return element;
}

/** A chart's column label: the value over its label ("no value yet" without a reading). */
function columnElement(widget: TwinWidget, reading: Reading | null, index: number): HTMLElement {
  const element = document.createElement("div");
  element.className = reading ? "column" : "column empty";
  element.dataset.widgetId = widget.id;
  element.dataset.index = String(index);
  const value = document.createElement("span");
  value.className = "v";
  value.textContent = reading ? String(reading.value) : "no value yet";
  element.append(value);
  if (reading) {
    const label = document.createElement("span");
    label.className = "l";
    label.textContent = reading.label;
    element.append(label);
  }
  return element;
}

/** A flat screen of readout rows, each a line of text over its sparkline, that can be redrawn. */
function readout(
  options: { width: number; height: number; size: [number, number] },
  color: number,
): { mesh: THREE.Mesh; draw(rows: readonly ReadoutRow[], now: number): void } {
  const canvas = document.createElement("canvas");
  const stroke = `#${color.toString(16).padStart(6, "0")}`;
  drawReadout(canvas, [{ text: "no value yet", points: [] }], options, 0, stroke);
  const texture = canvasTexture(canvas);
  const mesh = new THREE.Mesh(new THREE.PlaneGeometry(...options.size), new THREE.MeshBasicMaterial({ map: texture }));
  return {
    mesh,
    draw(rows, now) {
      drawReadout(canvas, rows, options, now, stroke);
      texture.needsUpdate = true;
    },
  };
}

function canvasTexture(canvas: HTMLCanvasElement): THREE.CanvasTexture {
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  texture.anisotropy = 4;
  return texture;
}

/**
 * Draws each row in its share of the canvas: the text, shrunk to fit the
 * width, and under it the row's sparkline of the hour up to `now` (the text
 * alone, centred, when the row has no points).
 */
function drawReadout(
  canvas: HTMLCanvasElement,
  rows: readonly ReadoutRow[],
  size: { width: number; height: number },
  now: number,
  stroke: string,
): void {
  canvas.width = size.width;
  canvas.height = size.height;
  const context = canvas.getContext("2d")!;
  context.fillStyle = "#0f172a";
  context.fillRect(0, 0, size.width, size.height);
  context.textAlign = "center";
  context.textBaseline = "middle";
  const rowHeight = size.height / rows.length;
  rows.forEach((row, i) => {
    const top = rowHeight * i;
    const trend = row.points.length > 0;
    const text = row.text.length > 60 ? `${row.text.slice(0, 59)}…` : row.text;
    let px = Math.min(rowHeight * (trend ? 0.3 : 0.4), 72);
    context.font = `600 ${px}px system-ui, sans-serif`;
    const width = context.measureText(text).width;
    if (width > size.width * 0.92) {
      px *= (size.width * 0.92) / width;
      context.font = `600 ${px}px system-ui, sans-serif`;
    }
    context.fillStyle = "#f8fafc";
    context.fillText(text, size.width / 2, top + rowHeight * (trend ? 0.25 : 0.5));
    if (!trend) return;
    const box = { x: size.width * 0.06, y: top + rowHeight * 0.47, width: size.width * 0.88, height: rowHeight * 0.44 };
    context.fillStyle = "rgba(148, 163, 184, 0.12)";
    context.fillRect(box.x, box.y, box.width, box.height);
    const path = sparklinePath(row.points, {
      from: now - TREND_WINDOW_MS,
      to: now,
      width: box.width,
      height: box.height,
      pad: 6,
    });
    context.save();
    context.translate(box.x, box.y);
    context.strokeStyle = stroke;
    context.lineWidth = 5;
    context.lineJoin = "round";
    context.lineCap = "round";
    context.stroke(new Path2D(path));
    context.restore();
  });
}
