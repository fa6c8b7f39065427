/// <reference lib="dom" />
/**
 * The twin view in headless Chromium: open it, collect what the console
 * says, read the text panel, and check that the WebGL canvas shows a scene.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "puppeteer-core";
import type { DevServer } from "./dev_server.ts";

/** An open twin view page, every console error, page error and failed request it had, and its warnings. */
export interface TwinPage {
  page: Page;
  errors: string[];
  warnings: string[];
}

/** Opens `url` at `width` x `height` and waits until the subscriber reports `live`. */
export async function openTwinView(
  browser: Browser,
  url: string,
  options: { width?: number; height?: number } = {},
): Promise<TwinPage> {
  const page = await browser.newPage();
  const errors: string[] = [];
  const warnings: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console.error: ${message.text()}`);
    if (message.type() === "warn") warnings.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error}`));
  page.on("requestfailed", (request) => errors.push(`request failed: ${request.url()}`));
  await page.setViewport({ width: options.width ?? 1280, height: options.height ?? 800 });
  await page.goto(url, { waitUntil: "load" });
  await waitForStatus(page, "live", 20_000);
  return { page, errors, warnings };
}

/** Waits until the connection badge shows `status`. */
export async function waitForStatus(page: Page, status: string, timeout = 10_000): Promise<void> {
  await page.waitForSelector(`#status[data-status="${status}"]`, { timeout });
}

/** The panel's rows: DataKey, value text and observation time (ISO) of each widget, in order. */
export function panelRows(page: Page): Promise<{ key: string; name: string; value: string; observed: string }[]> {
  return page.$$eval("#widgets li", (items) =>
    items.map((item) => ({
      key: (item as HTMLElement).dataset.key ?? "",
      name: item.querySelector("h3")?.textContent ?? "",
      value: item.querySelector('[data-field="value"]')?.textContent ?? "",
      observed: item.querySelector('[data-field="observed"]')?.getAttribute("datetime") ?? "",
    })));
}

/**
 * Waits until the panel shows `text` as the value of `dataKey` and returns how
 * long that took, in milliseconds; throws after `timeout`.
 */
export async function waitForValue(page: Page, dataKey: string, text: string, timeout: number): Promise<number> {
  const started = performance.now();
  await page.waitForFunction(
    (key, expected) =>
      document.querySelector(`#widgets li[data-key="${key}"] [data-field="value"]`)?.textContent === expected,
    { timeout, polling: "mutation" },
    dataKey,
    text,
  );
  return performance.now() - started;
}

/**
 * What the WebGL canvas shows: its size, how many distinct colours a grid of
 * samples finds (a blank or single-colour canvas gives 1), and a checksum of
 * those samples (it changes when the picture does).
 */
export function canvasColours(
  page: Page,
): Promise<{ width: number; height: number; colours: number; checksum: number }> {
  return page.$eval("#scene canvas", (element) => {
    const canvas = element as HTMLCanvasElement;
    const copy = document.createElement("canvas");
    copy.width = canvas.width;
    copy.height = canvas.height;
    const context = copy.getContext("2d")!;
    context.drawImage(canvas, 0, 0);
    const { data } = context.getImageData(0, 0, copy.width, copy.height);
    const colours = new Set<number>();
    let checksum = 0;
    for (let y = 0; y < copy.height; y += 8) {
      for (let x = 0; x < copy.width; x += 8) {
        const i = (y * copy.width + x) * 4;
        const colour = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
        colours.add(colour);
        checksum = (checksum * 31 + colour) >>> 0;
      }
    }
    return { width: canvas.width, height: canvas.height, colours: colours.size, checksum };
  });
}

/** The twin view's address, as `deno task dev` prints it. */
export function twinViewUrl(dev: DevServer): string {
  const url = dev.output().match(/Twin view: +(\S+)/)?.[1];
  assert.ok(url, dev.output());
  return url;
}

/** POSTs `body` to the dev server's endpoint with its demo key, as the printed curl command does. */
export function postToDev(dev: DevServer, body: string): Promise<Response> {
  return fetch(dev.endpoint, {
    method: "POST",
    headers: { Authorization: `Bearer ${dev.apiKey}`, "Content-Type": "application/json" },
    body,
  });
}
