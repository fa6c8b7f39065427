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
import { createLabelLayer } from "./labels.ts";
import type { Trends } from "./trends.ts";
import type { ShownValue, TwinWidget } from "./types.ts";
import { createWidgetView, TITLE_HEIGHT } from "./widget_objects.ts";

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

/** Builds the scene of `widgets` into `container` (which it fills, labels over it) and renders it. */
export function createTwinScene(container: HTMLElement, widgets: readonly TwinWidget[], trends: Trends): TwinScene {
  // preserveDrawingBuffer keeps the last frame readable (screenshots, the browser test's pixel check).
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(globalThis.devicePixelRatio || 1, 2));
  renderer.domElement.setAttribute("role", "img");
  renderer.domElement.setAttribute(
    "aria-label",
    `3D twin with ${widgets.length} widgets; the list of values beside it has the same content as text`,
  );
  const labels = createLabelLayer();
  container.replaceChildren(renderer.domElement, labels.element);

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

  const views = widgets.map((widget, i) => {
    const view = createWidgetView(widget, PALETTE[i % PALETTE.length]!, { labels, trends });
    scene.add(view.group);
    return view;
  });

  const camera = new THREE.PerspectiveCamera(45, 1, 0.1, 200);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  controls.maxPolarAngle = Math.PI * 0.49;
  controls.minDistance = 3;
  controls.maxDistance = 80;
  controls.addEventListener("change", requestRender);
  let userMoved = false;
  controls.addEventListener("start", () => userMoved = true);

  /** Lays the widgets out in a grid (two columns on a tall screen) and frames them all, until the user moves. */
  function arrange(aspect: number) {
    if (userMoved) return;
    const n = Math.max(views.length, 1);
    const columns = aspect < 0.9 ? Math.min(n, 2) : n <= 4 ? n : Math.ceil(Math.sqrt(n * aspect));
    const rows = Math.ceil(n / columns);
    views.forEach((view, i) => {
      const column = i % columns;
      const row = Math.floor(i / columns);
      view.group.position.set((column - (columns - 1) / 2) * SPACING, 0, (row - (rows - 1) / 2) * SPACING * 1.2);
    });
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

  // The meshes that hide labels behind them, gathered again after new values (a chart's bars change).
  let solids: THREE.Object3D[] | null = null;
  function occluders(): THREE.Object3D[] {
    if (solids) return solids;
    solids = [];
    for (const view of views) view.group.traverse((object) => object.userData.occludes && solids!.push(object));
    return solids;
  }

  let frame = 0;
  function requestRender() {
    if (!frame) frame = requestAnimationFrame(render);
  }
  function render(now: number) {
    frame = 0;
    let again = controls.update();
    for (const view of views) {
      const left = view.glowUntil - now;
      const strength = left > 0 ? left / HIGHLIGHT_MS : 0;
      for (const material of view.glow) {
        material.emissive.copy(HIGHLIGHT);
        material.emissiveIntensity = strength * 0.9;
      }
      if (left > 0) again = true;
    }
    renderer.render(scene, camera);
    // Beyond 85% of the fog's reach objects have all but vanished: so do their labels.
    labels.layout(camera, occluders(), FOG_FAR * 0.85);
    if (again) requestRender();
  }

  function resize() {
    const width = Math.max(container.clientWidth, 1);
    const height = Math.max(container.clientHeight, 1);
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    arrange(camera.aspect);
    requestRender();
  }
  const observer = new ResizeObserver(resize);
  observer.observe(container);
  resize();

  return {
    update(values, changed) {
      const now = performance.now();
      for (const view of views) {
        const latest = values[view.widget.data_key];
        if (!latest) continue;
        view.show(latest.value);
        if (changed.includes(view.widget.data_key)) view.glowUntil = now + HIGHLIGHT_MS;
      }
      solids = null;
      requestRender();
    },
    drawTrends(now) {
      for (const view of views) view.drawTrends(now);
      requestRender();
    },
    dispose() {
      cancelAnimationFrame(frame);
      observer.disconnect();
      controls.dispose();
      scene.traverse((object) => {
        const mesh = object as THREE.Mesh;
        mesh.geometry?.dispose();
        for (const material of [mesh.material ?? []].flat()) {
          (material as THREE.MeshBasicMaterial).map?.dispose();
          material.dispose();
        }
      });
      renderer.dispose();
      renderer.domElement.remove();
      labels.element.remove();
    },
  };
}
