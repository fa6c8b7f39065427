/// <reference lib="dom" />
/**
 * The 3D twin: one object per widget (widget_objects.ts) laid out on a floor,
 * a camera that frames them all, orbit controls, the labels over the canvas
 * (labels.ts, placed after every frame), and the brief glow of a widget whose
 * value changed. Renders on demand (camera moves, new values, highlights, the
 * sparklines' window sliding), not in a loop, to spare the CPU.
 *
 * @module
 */
// @ts-types="@types/three"
import * as THREE from "three";
// @ts-types="@types/three/examples/jsm/controls/OrbitControls.d.ts"
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { createLabelLayer, type LabelLayer } from "./labels.ts";
import type { Trends } from "./trends.ts";
import type { ShownValue, TwinWidget } from "./types.ts";
import { createWidgetView, TITLE_HEIGHT, type WidgetView } from "./widget_objects.ts";

/** The scene of one datasource. */
export interface TwinScene {
  /** Shows `values`; widgets whose DataKey is in `changed` glow briefly. */
  update(values: Readonly<Record<string, ShownValue>>, changed: readonly string[]): void;
  /** Draws the sparklines again from `trends` at `now` (epoch ms): history came, or the window slid. */
  drawTrends(now: number): void;
  /** Frees the GPU resources and stops listening to the container. */
  dispose(): void;
}

const SPACING = 4;
const FOG_FAR = 45;
const HIGHLIGHT_MS = 1200;
const HIGHLIGHT = new THREE.Color(0xffb020);
const PALETTE = [0x38bdf8, 0x34d399, 0xfbbf24, 0xf472b6, 0xa78bfa, 0xf87171];

/** One scene, as the steps below share it. */
interface SceneState {
  readonly container: HTMLElement;
  readonly renderer: THREE.WebGLRenderer;
  readonly labels: LabelLayer;
  readonly scene: THREE.Scene;
  readonly views: readonly WidgetView[];
  readonly camera: THREE.PerspectiveCamera;
  readonly controls: OrbitControls;
  /** The user moved the camera: the layout no longer frames the widgets. */
  userMoved: boolean;
  /** The meshes that hide labels behind them, gathered again after new values (a chart's bars change). */
  solids: THREE.Object3D[] | null;
  /** The animation frame requested, 0 when none. */
  frame: number;
}

/** Builds the scene of `widgets` into `container` (which it fills, labels over it) and renders it. */
export function createTwinScene(container: HTMLElement, widgets: readonly TwinWidget[], trends: Trends): TwinScene {
  const renderer = createRenderer(widgets.length);
  const labels = createLabelLayer();
  container.replaceChildren(renderer.domElement, labels.element);
  const scene = createStage();
  const views = widgets.map((widget, i) => {
    const view = createWidgetView(widget, PALETTE[i % PALETTE.length]!, { labels, trends });
    scene.add(view.group);
    return view;
  });
  const camera = new THREE.PerspectiveCamera(45, 1, 0.1, 200);
  const controls = createControls(camera, renderer.domElement);
  const state: SceneState = {
    container,
    renderer,
    labels,
    scene,
    views,
    camera,
    controls,
    userMoved: false,
    solids: null,
    frame: 0,
  };
  controls.addEventListener("change", () => requestRender(state));
  controls.addEventListener("start", () => state.userMoved = true);
  const observer = new ResizeObserver(() => resize(state));
  observer.observe(container);
  resize(state);
  return {
    update: (values, changed) => update(state, values, changed),
    drawTrends: (now) => drawTrends(state, now),
    dispose: () => dispose(state, observer),
  };
}

/** The WebGL renderer, its canvas described for screen readers. */
function createRenderer(widgetCount: number): THREE.WebGLRenderer {
  // preserveDrawingBuffer keeps the last frame readable (screenshots, the browser test's pixel check).
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(globalThis.devicePixelRatio || 1, 2));
  renderer.domElement.setAttribute("role", "img");
  renderer.domElement.setAttribute(
    "aria-label",
    `3D twin with ${widgetCount} widgets; the list of values beside it has the same content as text`,
  );
  return renderer;
}

/** An empty scene: the background, the lights, the fog and the floor with its grid. */
function createStage(): THREE.Scene {
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x0b1220);
  scene.add(new THREE.HemisphereLight(0xdbeafe, 0x1e293b, 1.6));
  const sun = new THREE.DirectionalLight(0xffffff, 2);
  sun.position.set(5, 10, 7);
  scene.add(sun);

  scene.fog = new THREE.Fog(0x0b1220, 18, FOG_FAR);
  const floor = new THREE.Mesh(new THREE.CircleGeometry(40, 64), new THREE.MeshStandardMaterial({ color: 0x111827 }));
  floor.rotation.x = -Math.PI / 2;
  scene.add(floor);
  const grid = new THREE.GridHelper(40, 40, 0x334155, 0x1f2937);
  grid.position.y = 0.005;
  scene.add(grid);
  return scene;
}

/** Orbit controls for `camera`: damped, above the floor, neither too close nor too far. */
function createControls(camera: THREE.PerspectiveCamera, canvas: HTMLElement): OrbitControls {
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = true;
  controls.maxPolarAngle = Math.PI * 0.49;
  controls.minDistance = 3;
  controls.maxDistance = 80;
  return controls;
}

/** Lays the widgets out in a grid (two columns on a tall screen) and frames them all, until the user moves. */
function arrange(state: SceneState, aspect: number) {
  if (state.userMoved) return;
  const rows = placeInGrid(state.views, aspect);
  frameAll(state, aspect, rows);
}

/** Places the views in rows and columns around the origin; returns the number of rows. */
function placeInGrid(views: readonly WidgetView[], aspect: number): number {
  const n = Math.max(views.length, 1);
  const columns = aspect < 0.9 ? Math.min(n, 2) : n <= 4 ? n : Math.ceil(Math.sqrt(n * aspect));
  const rows = Math.ceil(n / columns);
  views.forEach((view, i) => {
    const column = i % columns;
    const row = Math.floor(i / columns);
    view.group.position.set((column - (columns - 1) / 2) * SPACING, 0, (row - (rows - 1) / 2) * SPACING * 1.2);
  });
  return rows;
}

/** Points the camera at all the views, from higher up when there are several rows. */
function frameAll({ views, camera, controls }: SceneState, aspect: number, rows: number) {
  const bounds = new THREE.Box3();
  for (const view of views) bounds.expandByObject(view.group);
  if (bounds.isEmpty()) bounds.set(new THREE.Vector3(-2, 0, -2), new THREE.Vector3(2, 3, 2));
  // The titles float above the objects: keep them in the picture.
  bounds.max.y = Math.max(bounds.max.y, TITLE_HEIGHT + 0.6);
  const sphere = bounds.getBoundingSphere(new THREE.Sphere());
  const vertical = THREE.MathUtils.degToRad(camera.fov) / 2;
  const horizontal = Math.atan(Math.tan(vertical) * aspect);
  const distance = sphere.radius / Math.sin(Math.min(vertical, horizontal)) * 0.85;
  controls.target.copy(sphere.center);
  camera.position.copy(sphere.center).addScaledVector(
    new THREE.Vector3(0, rows > 1 ? 1.1 : 0.5, 1).normalize(),
    distance,
  );
  controls.update();
}

/** The meshes that hide labels behind them (gathered once per set of values). */
function occluders(state: SceneState): THREE.Object3D[] {
  if (state.solids) return state.solids;
  const solids: THREE.Object3D[] = [];
  for (const view of state.views) view.group.traverse((object) => object.userData.occludes && solids.push(object));
  state.solids = solids;
  return solids;
}

/** Asks for a frame, unless one is already asked for. */
function requestRender(state: SceneState) {
  if (!state.frame) state.frame = requestAnimationFrame((now) => render(state, now));
}

/** Draws a frame and places the labels; asks for another while the camera glides or a widget glows. */
function render(state: SceneState, now: number) {
  state.frame = 0;
  const moving = state.controls.update();
  const glowing = glow(state.views, now);
  state.renderer.render(state.scene, state.camera);
  // Beyond 85% of the fog's reach objects have all but vanished: so do their labels.
  state.labels.layout(state.camera, occluders(state), FOG_FAR * 0.85);
  if (moving || glowing) requestRender(state);
}

/** Sets each view's highlight as it fades at `now`; true while any still glows. */
function glow(views: readonly WidgetView[], now: number): boolean {
  let glowing = false;
  for (const view of views) {
    const left = view.glowUntil - now;
    const strength = left > 0 ? left / HIGHLIGHT_MS : 0;
    for (const material of view.glow) {
      material.emissive.copy(HIGHLIGHT);
      material.emissiveIntensity = strength * 0.9;
    }
    if (left > 0) glowing = true;
  }
  return glowing;
}

/** Fits the canvas and the camera to the container, lays the widgets out again and renders. */
function resize(state: SceneState) {
  const width = Math.max(state.container.clientWidth, 1);
  const height = Math.max(state.container.clientHeight, 1);
  state.renderer.setSize(width, height, false);
  state.camera.aspect = width / height;
  state.camera.updateProjectionMatrix();
  arrange(state, state.camera.aspect);
  requestRender(state);
}

/** Shows `values`; the views whose DataKey is in `changed` start to glow. */
function update(state: SceneState, values: Readonly<Record<string, ShownValue>>, changed: readonly string[]) {
  const now = performance.now();
  for (const view of state.views) {
    const latest = values[view.widget.data_key];
    if (!latest) continue;
    view.show(latest.value);
    if (changed.includes(view.widget.data_key)) view.glowUntil = now + HIGHLIGHT_MS;
  }
  state.solids = null;
  requestRender(state);
}

/** Draws the sparklines of every view again at `now`. */
function drawTrends(state: SceneState, now: number) {
  for (const view of state.views) view.drawTrends(now);
  requestRender(state);
}

/** Stops rendering and listening, frees the GPU resources and takes the canvas and labels away. */
function dispose(state: SceneState, observer: ResizeObserver) {
  cancelAnimationFrame(state.frame);
  observer.disconnect();
  state.controls.dispose();
  freeResources(state.scene);
  state.renderer.dispose();
  state.renderer.domElement.remove();
  state.labels.element.remove();
}

/** Disposes of the geometries, materials and textures of `scene`. */
function freeResources(scene: THREE.Scene) {
  scene.traverse((object) => {
    const mesh = object as THREE.Mesh;
    mesh.geometry?.dispose();
    for (const material of [mesh.material ?? []].flat()) {
      (material as THREE.MeshBasicMaterial).map?.dispose();
      material.dispose();
    }
  });
}
