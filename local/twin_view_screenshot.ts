/**
 * `deno task screenshot`: regenerates docs/twin_view.png, the twin view of
 * `deno task dev` at 1280x800 after the documentation's combined payload,
 * in headless Chromium (as the browser tests run it).
 *
 * @module
 */
import { launchChromium } from "./chromium.ts";
import { openTwinView, postToDev, twinViewUrl, waitForValue } from "../tests/support/browser.ts";
import { startDevServer } from "../tests/support/dev_server.ts";
import { DOC_PAYLOADS } from "../tests/support/function.ts";

const OUTPUT = new URL("../docs/twin_view.png", import.meta.url);

const dir = await Deno.makeTempDir({ prefix: "twinnoverse-screenshot-" });
const dev = await startDevServer(dir, ["--reset"]);
try {
  await using chromium = await launchChromium();
  const { page, errors } = await openTwinView(chromium.browser, twinViewUrl(dev), { width: 1280, height: 800 });
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
