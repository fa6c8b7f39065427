/** The dev server's twin view route: the page, its style, its config and its bundled script. */
import assert from "node:assert/strict";
import { createTwinViewHandler, isTwinViewPath } from "../../local/twin_view_route.ts";

const OPTIONS = { supabaseUrl: "http://127.0.0.1:1", anonKey: "anon.jwt", accessToken: "user.jwt" };

function get(handler: (r: Request) => Promise<Response>, path: string, method = "GET"): Promise<Response> {
  return handler(new Request(`http://127.0.0.1:1${path}`, { method }));
}

Deno.test("the twin view serves its page, style and config; other paths and methods are refused", async () => {
  const handler = createTwinViewHandler(OPTIONS);
  const page = await get(handler, "/");
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/twin_view\/main\.js"><\/script>/);
  assert.match(html, /<ol id="widgets">/);
  assert.doesNotMatch(html, /https?:\/\//, "the page loads nothing from another host");
  const css = await get(handler, "/twin_view/style.css");
  assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
  assert.match(await css.text(), /@media \(max-width: 720px\)/);
  const config = await get(handler, "/twin_view/config.json");
  assert.equal(config.headers.get("cache-control"), "no-store");
  assert.deepEqual(await config.json(), OPTIONS);

  const missing = await get(handler, "/twin_view/nothing.js");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).code, "not_found");
  const post = await get(handler, "/", "POST");
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  await (await get(handler, "/twin_view/main.js")).body?.cancel(); // let the bundling finish
});

Deno.test("the page script is one self-contained browser module: three.js, supabase-js and the subscriber inside", async () => {
  const handler = createTwinViewHandler(OPTIONS);
  const script = await get(handler, "/twin_view/main.js");
  assert.equal(script.status, 200);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  const js = await script.text();
  assert.ok(js.length > 300_000, `${js.length} bytes`);
  assert.doesNotMatch(js, /\bimport\s*(?:[\w*{}\s,]+from\s*)?["'](?:https?:|npm:|jsr:|\.{0,2}\/)/, "an import left in");
  assert.match(js, /twin_datasources/);
  assert.match(js, /datasource_latest_values/);
  assert.match(js, /WebGLRenderer|WebGL2RenderingContext/);
});

Deno.test("the twin view's paths are / and /twin_view/...; the function and stand-ins keep theirs", () => {
  assert.ok(isTwinViewPath("/"));
  assert.ok(isTwinViewPath("/twin_view/main.js"));
  for (const path of ["/functions/v1/ingest-data", "/rest/v1/rpc/x", "/realtime/v1/websocket", "/index.html"]) {
    assert.equal(isTwinViewPath(path), false, path);
  }
});
