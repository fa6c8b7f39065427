/**
 * `deno task screenshot`: regenerates docs/twin_view.png, the twin view of
 * `deno task dev` at 1280x800 after the documentation's combined payload,
 * in headless Chromium (as the browser tests run it). An hour of readings
 * with their own times goes first, so that the sparklines have a history.
 *
 * @module
 */
import { launchChromium } from "./chromium.ts";
import { openTwinView, postToDev, twinViewUrl, waitForValue } from "../tests/support/browser.ts";
import { startDevServer } from "../tests/support/dev_server.ts";
import { DOC_PAYLOADS } from "../tests/support/function.ts";

const OUTPUT = new URL("../docs/twin_view.png", import.meta.url);

/** The hour before `now`, a reading a minute (as a gateway would send them): smooth, the same shape every run. */
function lastHour(now: number): string {
  const readings = Array.from({ length: 60 }, (_, i) => ({
    observed_at: now - (60 - i) * 60_000,
    values: {
      temperature: Math.round((41 + 2.5 * Math.sin(i / 6) + i / 30) * 10) / 10,
      motor_stats: {
        rpm: Math.round(1480 + 30 * Math.cos(i / 8)),
        vibration: Math.round((0.7 + 0.06 * Math.sin(i / 4)) * 100) / 100,
      },
    },
  }));
  return JSON.stringify(readings);
}

const dir = await Deno.makeTempDir({ prefix: "twinnoverse-screenshot-" });
const dev = await startDevServer(dir, ["--reset"]);
try {
  await using chromium = await launchChromium();
  const history = await postToDev(dev, lastHour(Date.now()));
  if (history.status !== 200) {
    throw new Error(`POST of the last hour answered ${history.status}: ${await history.text()}`);
  }
  const { page, errors } = await openTwinView(chromium.browser, twinViewUrl(dev), { width: 1280, height: 800 });
  await page.waitForSelector('figure.trend[data-series="temperature"]:not([hidden])', { timeout: 5000 });
  const res = await postToDev(dev, DOC_PAYLOADS.combined);
  if (res.status !== 200) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
  await waitForValue(page, "temperature", "42.5", 5000);
  // Let the highlight of the new values end, so that every run takes the same picture.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await Deno.writeFile(OUTPUT, await page.screenshot({ type: "png" }));
  if (errors.length > 0) throw new Error(`The page reported errors:\n${errors.join("\n")}`);
  console.log(`Wrote ${OUTPUT.pathname}`);
} finally {
  await dev.stop();
  await Deno.remove(dir, { recursive: true });
}
