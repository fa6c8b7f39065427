/**
 * The live twin view on the dev server: `/` serves the page of
 * `clients/twin_view/`, `/twin_view/main.js` its script bundled with three.js,
 * supabase-js and the subscriber module (by `deno bundle`, once per process,
 * started by the first visit to the page; nothing from a CDN), and
 * `/twin_view/config.json` the Supabase URL, anon key and access token the
 * page signs in with.
 *
 * Development only: the config hands the demo user's access token to whoever
 * can reach the dev server (it listens on 127.0.0.1). A deployed dashboard
 * signs its users in with Supabase Auth instead.
 *
 * @module
 */

/** What the page connects with: the dev server's Supabase URL, anon key and a user's access token. */
export interface TwinViewOptions {
  supabaseUrl: string;
  anonKey: string;
  accessToken: string;
}

const SOURCE = new URL("../clients/twin_view/", import.meta.url);
const ROOT = new URL("../", import.meta.url);
const NO_STORE = { "Cache-Control": "no-store" };

/** True for the paths the twin view serves: `/` and `/twin_view/...`. */
export function isTwinViewPath(pathname: string): boolean {
  return pathname === "/" || pathname.startsWith("/twin_view/");
}

/**
 * The twin view's handler. The page script is bundled on the first visit (the
 * page's own request starts it, so its script request finds it under way) and
 * kept for the life of the process: a dev server nobody looks at bundles nothing.
 */
export function createTwinViewHandler(options: TwinViewOptions): (request: Request) => Promise<Response> {
  let bundle: Promise<string> | null = null;
  const script = () => {
    if (!bundle) {
      bundle = bundleTwinView();
      bundle.catch(() => bundle = null); // reported on the request that needs it; the next visit tries again
    }
    return bundle;
  };
  const config = JSON.stringify({
    supabaseUrl: options.supabaseUrl,
    anonKey: options.anonKey,
    accessToken: options.accessToken,
  });
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return Response.json(
        { code: "method_not_allowed", message: `Method ${request.method} not allowed: the twin view answers GET` },
        { status: 405, headers: { Allow: "GET, HEAD" } },
      );
    }
    switch (new URL(request.url).pathname) {
      case "/":
        void script().catch(() => {});
        return file("index.html", "text/html; charset=utf-8");
      case "/twin_view/style.css":
        return file("style.css", "text/css; charset=utf-8");
      case "/twin_view/config.json":
        return new Response(config, { headers: { "Content-Type": "application/json", ...NO_STORE } });
      case "/twin_view/main.js":
        try {
          return new Response(await script(), {
            headers: { "Content-Type": "text/javascript; charset=utf-8", ...NO_STORE },
          });
        } catch (error) {
          return Response.json({ code: "bundle_failed", message: (error as Error).message }, { status: 500 });
        }
      default:
        return Response.json(
          { code: "not_found", message: `Not found: the twin view is at /` },
          { status: 404 },
        );
    }
  };
}

/** The page script and everything it imports as one browser module, built with `deno bundle`. */
export async function bundleTwinView(): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform=browser", "--minify", new URL("main.ts", SOURCE).pathname],
    cwd: ROOT.pathname,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const errors = new TextDecoder().decode(stderr).trim();
  if (!success) throw new Error(`Cannot bundle the twin view: ${errors}`);
  return new TextDecoder().decode(stdout);
}

async function file(name: string, contentType: string): Promise<Response> {
  const body = await Deno.readFile(new URL(name, SOURCE));
  return new Response(body, { headers: { "Content-Type": contentType, ...NO_STORE } });
}
