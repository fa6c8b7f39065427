/**
 * Headless Chromium for the browser tests and the screenshot task: Debian's
 * `chromium` driven by puppeteer-core, WebGL through SwiftShader (no GPU
 * here), a fresh profile each time, nothing fetched from the network.
 *
 * @module
 */
import puppeteer, { type Browser } from "puppeteer-core";

/** Debian's chromium (`apt-get install chromium`), or CHROMIUM_PATH. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox", // runs as root in CI containers, where the sandbox cannot start
  "--use-angle=swiftshader", // WebGL on the CPU
  "--enable-unsafe-swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--no-first-run",
  "--no-default-browser-check",
];

/** A running browser; `await using` closes it and deletes its profile. */
export interface HeadlessChromium extends AsyncDisposable {
  browser: Browser;
}

/** Launches headless Chromium with a new profile in a temporary folder. */
export async function launchChromium(): Promise<HeadlessChromium> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `Cannot start the browser: ${CHROMIUM_PATH} is missing (apt-get install chromium, or CHROMIUM_PATH)`,
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "twinnoverse-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM_PATH,
    userDataDir: profile,
    args: FLAGS,
    headless: true,
  });
  return {
    browser,
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
