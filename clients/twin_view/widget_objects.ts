/// <reference lib="dom" />
/**
 * The 3D object of each widget type, labelled with the widget's name and
 * DataKey: SingleData a machine with a readout and a gauge, DoubleData a
 * two-value panel, BarChart 3D bars, LineChart a line; text drawn on canvases.
 *
 * @module
 */
// @ts-types="@types/three"
import * as THREE from "three";
import { formatValue, type Reading, readingsOf } from "./format.ts";
import { unitScale } from "./scale.ts";
import type { TwinWidget } from "./types.ts";

/** One widget's object: `show` draws a value, `glow` the highlight materials. */
export interface WidgetView {
  widget: TwinWidget;
  group: THREE.Group;
  glow: THREE.MeshStandardMaterial[];
  show(value: unknown): void;
  glowUntil: number;
}

/** The object of `widget`, in `color`, showing no value yet. */
export function createWidgetView(widget: TwinWidget, color: number): WidgetView {
  const group = new THREE.Group();
  const plinth = new THREE.MeshStandardMaterial({ color: 0x334155, roughness: 0.8 });
  const base = new THREE.Mesh(new THREE.BoxGeometry(3.4, 0.16, 2.4), plinth);
  base.position.y = 0.08;
  group.add(base);
  const title = textSprite([widget.name, widget.data_key], { width: 512, height: 160, scale: 3.2 });
  title.position.y = 3.8;
  group.add(title);

  const parts = widget.widget_type === "SingleData"
    ? singleData(widget, color)
    : widget.widget_type === "DoubleData"
    ? doubleData(widget, color)
    : chart(widget, color);
  group.add(parts.object);
  return { widget, group, glow: [plinth, ...parts.glow], show: parts.show, glowUntil: 0 };
}

type Parts = Pick<WidgetView, "glow" | "show"> & { object: THREE.Object3D };

/** A machine: a housing with a screen showing the value and a gauge whose needle spans the values seen. */
function singleData(widget: TwinWidget, color: number): Parts {
  const object = new THREE.Group();
  const housing = new THREE.MeshStandardMaterial({ color: 0x64748b, metalness: 0.3, roughness: 0.5 });
  const body = new THREE.Mesh(new THREE.BoxGeometry(2, 1.6, 1.4), housing);
  body.position.y = 0.96;
  object.add(body);
  const screen = textPlane(["no value yet"], { width: 512, height: 192, size: [1.7, 0.64] });
  screen.mesh.position.set(0, 1.05, 0.71);
  object.add(screen.mesh);

  const dial = new THREE.Mesh(
    new THREE.CircleGeometry(0.62, 48, 0, Math.PI),
    new THREE.MeshStandardMaterial({ color: 0xe2e8f0, side: THREE.DoubleSide }),
  );
  dial.position.set(0, 1.8, 0);
  object.add(dial);
  const needle = new THREE.Mesh(
    new THREE.BoxGeometry(0.56, 0.05, 0.03),
    new THREE.MeshStandardMaterial({ color }),
  );
  needle.geometry.translate(0.28, 0, 0.02);
  needle.position.set(0, 1.8, 0);
  needle.rotation.z = Math.PI;
  object.add(needle);

  let low = Infinity;
  let high = -Infinity;
  return {
    object,
    glow: [housing],
    show(value) {
      screen.draw([formatValue(widget, value)]);
      if (typeof value !== "number" || !Number.isFinite(value)) return;
      low = Math.min(low, value, 0);
      high = Math.max(high, value);
      const share = high > low ? unitScale([low, high])(value) : 0.5;
      needle.rotation.z = Math.PI * (1 - share * 0.999);
    },
  };
}

/** A panel on a post showing the two sub-keys and their values. */
function doubleData(widget: TwinWidget, color: number): Parts {
  const object = new THREE.Group();
  const frame = new THREE.MeshStandardMaterial({ color, metalness: 0.2, roughness: 0.6 });
  const post = new THREE.Mesh(new THREE.CylinderGeometry(0.08, 0.08, 1.2), frame);
  post.position.y = 0.76;
  object.add(post);
  const board = new THREE.Mesh(new THREE.BoxGeometry(2.7, 1.7, 0.12), frame);
  board.position.y = 2.2;
  object.add(board);
  const keys = [widget.settings.primarySubKey ?? "", widget.settings.secondarySubKey ?? ""];
  const face = textPlane(keys.map((k) => `${k}: –`), { width: 512, height: 320, size: [2.5, 1.56] });
  face.mesh.position.set(0, 2.2, 0.07);
  object.add(face.mesh);
  return {
    object,
    glow: [frame],
    show(value) {
      const readings = readingsOf(widget, value);
      face.draw(readings ? readings.map((r) => `${r.label}: ${r.value}`) : [formatValue(widget, value)]);
    },
  };
}

/** BarChart: a bar per label; LineChart: a line with a dot per point; both on a backboard, with labels. */
function chart(widget: TwinWidget, color: number): Parts {
  const object = new THREE.Group();
  const board = new THREE.MeshStandardMaterial({ color: 0x1e293b, roughness: 0.9 });
  const back = new THREE.Mesh(new THREE.BoxGeometry(3.2, 2.8, 0.08), board);
  back.position.set(0, 1.7, -0.9);
  object.add(back);
  const content = new THREE.Group();
  object.add(content);
  // Labels and values under the bars or points, one column each, on a strip sloping up to the viewer.
  const captionCanvas = document.createElement("canvas");
  const captionSize = { width: 1024, height: 192 };
  const captionTexture = canvasTexture(drawColumns(captionCanvas, [], captionSize));
  const caption = new THREE.Mesh(
    new THREE.PlaneGeometry(2.8, 0.525),
    new THREE.MeshBasicMaterial({ map: captionTexture }),
  );
  caption.position.set(0, 0.3, 0.8);
  caption.rotation.x = -1.0;
  object.add(caption);
  const material = new THREE.MeshStandardMaterial({ color, metalness: 0.1, roughness: 0.5 });

  return {
    object,
    glow: [board, material],
    show(value) {
      // Every mesh of the content shares `material`: only their geometries go.
      for (const child of [...content.children] as THREE.Mesh[]) {
        content.remove(child);
        child.geometry.dispose();
      }
      const readings = (readingsOf(widget, value) ?? []).slice(0, 48) as (Reading & { value: number })[];
      drawColumns(captionCanvas, readings, captionSize);
      captionTexture.needsUpdate = true;
      if (readings.length === 0) return;
      const share = unitScale([0, ...readings.map((r) => r.value)]);
      const step = 2.8 / readings.length;
      const x = (i: number) => -1.4 + step * (i + 0.5);
      const y = (v: number) => 0.3 + share(v) * 2.4;
      if (widget.widget_type === "BarChart") {
        readings.forEach((r, i) => {
          const height = Math.max(Math.abs(y(r.value) - y(0)), 0.02);
          const bar = new THREE.Mesh(new THREE.BoxGeometry(step * 0.7, height, step * 0.7), material);
          bar.position.set(x(i), Math.min(y(r.value), y(0)) + height / 2, 0);
          content.add(bar);
        });
      } else {
        const points = readings.map((r, i) => new THREE.Vector3(x(i), y(r.value), -0.8));
        // A tube rather than THREE.Line: WebGL draws lines one pixel wide whatever their linewidth.
        const path = new THREE.CurvePath<THREE.Vector3>();
        points.slice(1).forEach((p, i) => path.add(new THREE.LineCurve3(points[i]!, p)));
        const line = new THREE.Mesh(
          points.length > 1 ? new THREE.TubeGeometry(path, points.length * 4, 0.035, 6) : new THREE.BufferGeometry(),
          material,
        );
        content.add(line);
        const dots = new THREE.InstancedMesh(new THREE.SphereGeometry(0.07, 12, 8), material, points.length);
        points.forEach((p, i) => dots.setMatrixAt(i, new THREE.Matrix4().makeTranslation(p.x, p.y, p.z)));
        content.add(dots);
      }
    },
  };
}

/** A camera-facing label drawn on a canvas. */
function textSprite(lines: string[], options: { width: number; height: number; scale: number }): THREE.Sprite {
  const canvas = drawLines(document.createElement("canvas"), lines, options, { background: "rgba(15,23,42,0.8)" });
  const sprite = new THREE.Sprite(
    new THREE.SpriteMaterial({ map: canvasTexture(canvas), depthWrite: false }),
  );
  sprite.scale.set(options.scale, (options.scale * options.height) / options.width, 1);
  return sprite;
}

/** A flat text surface (screen, panel face) that can be redrawn. */
function textPlane(
  lines: string[],
  options: { width: number; height: number; size: [number, number] },
): { mesh: THREE.Mesh; draw(lines: string[]): void } {
  const canvas = drawLines(document.createElement("canvas"), lines, options, { background: "#0f172a" });
  const texture = canvasTexture(canvas);
  const mesh = new THREE.Mesh(
    new THREE.PlaneGeometry(...options.size),
    new THREE.MeshBasicMaterial({ map: texture }),
  );
  return {
    mesh,
    draw(next) {
      drawLines(canvas, next, options, { background: "#0f172a" });
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

/** Draws one column per reading: its value above its label ("no value yet" when there is none). */
function drawColumns(
  canvas: HTMLCanvasElement,
  readings: readonly Reading[],
  size: { width: number; height: number },
): HTMLCanvasElement {
  if (readings.length === 0) return drawLines(canvas, ["no value yet"], size, { background: "#0f172a" });
  canvas.width = size.width;
  canvas.height = size.height;
  const context = canvas.getContext("2d")!;
  context.fillStyle = "#0f172a";
  context.fillRect(0, 0, size.width, size.height);
  context.textAlign = "center";
  context.textBaseline = "middle";
  const column = size.width / readings.length;
  readings.forEach((reading, i) => {
    const x = column * (i + 0.5);
    for (
      const [text, y, color] of [[String(reading.value), 0.3, "#f8fafc"], [reading.label, 0.72, "#94a3b8"]] as const
    ) {
      let px = 52;
      context.font = `600 ${px}px system-ui, sans-serif`;
      const width = context.measureText(text).width;
      if (width > column * 0.9) px *= (column * 0.9) / width;
      context.font = `600 ${px}px system-ui, sans-serif`;
      context.fillStyle = color;
      context.fillText(text, x, size.height * y);
    }
  });
  return canvas;
}

/** Draws `lines` centred on `canvas`, the first larger, each shrunk to fit the width. */
function drawLines(
  canvas: HTMLCanvasElement,
  lines: string[],
  size: { width: number; height: number },
  style: { background: string },
): HTMLCanvasElement {
  canvas.width = size.width;
  canvas.height = size.height;
  const context = canvas.getContext("2d")!;
  context.fillStyle = style.background;
  context.fillRect(0, 0, size.width, size.height);
  context.textAlign = "center";
  context.textBaseline = "middle";
  const lineHeight = size.height / lines.length;
  lines.forEach((line, i) => {
    const text = line.length > 60 ? `${line.slice(0, 59)}…` : line;
    let px = Math.min(lineHeight * (i === 0 ? 0.6 : 0.45), 72);
    context.font = `600 ${px}px system-ui, sans-serif`;
    const width = context.measureText(text).width;
    if (width > size.width * 0.92) {
      px *= (size.width * 0.92) / width;
      context.font = `600 ${px}px system-ui, sans-serif`;
    }
    context.fillStyle = i === 0 ? "#f8fafc" : "#94a3b8";
    context.fillText(text, size.width / 2, lineHeight * (i + 0.5));
  });
  return canvas;
}
