/**
 * What `supabase functions deploy ingest-data` bundles: the function's folder
 * alone, with its own deno.json as the import map (the CLI never reads the
 * root deno.json). The folder is copied into an empty directory, type-checked
 * and served there, and answers the documentation's cURL request (real curl).
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";
import { freePort, waitForPort } from "../../local/net.ts";

const FUNCTION_DIR = new URL("../../supabase/functions/ingest-data/", import.meta.url);
const ROOT_CONFIG = new URL("../../deno.json", import.meta.url);

/** Copies the function's folder, and nothing else, into a new temporary directory. */
async function copyFunctionAlone(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ingest-data-bundle-" });
  for await (const entry of Deno.readDir(FUNCTION_DIR)) {
    if (entry.isFile) await Deno.copyFile(new URL(entry.name, FUNCTION_DIR), `${dir}/${entry.name}`);
  }
  return dir;
}

function run(args: string[], cwd: string) {
  return new Deno.Command(Deno.execPath(), { args, cwd, stdout: "piped", stderr: "piped" }).output();
}

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("the function's deno.json maps every bare import the function uses, at the root deno.json's versions", async () => {
  const own = JSON.parse(await Deno.readTextFile(new URL("deno.json", FUNCTION_DIR))).imports as Record<string, string>;
  const root = JSON.parse(await Deno.readTextFile(ROOT_CONFIG)).imports as Record<string, string>;
  const used = new Set<string>();
  for await (const entry of Deno.readDir(FUNCTION_DIR)) {
    if (!entry.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, FUNCTION_DIR));
    for (const [, specifier] of text.matchAll(/^(?:import|export)\b[^;"]*?\bfrom\s+"([^"]+)"/gm)) {
      assert.ok(!specifier!.startsWith("../"), `${entry.name} imports from outside the folder: ${specifier}`);
      if (!specifier!.startsWith("./") && !specifier!.startsWith("node:")) used.add(specifier!);
    }
  }
  assert.deepEqual([...used].sort(), Object.keys(own).sort(), "imports used vs mapped in the function's deno.json");
  for (const [name, target] of Object.entries(own)) {
    assert.match(target, /^npm:.+@\d+\.\d+\.\d+$/, `${name} is not a pinned npm: specifier`);
    assert.equal(root[name], target, `root deno.json maps ${name} to ${root[name]}, the function to ${target}`);
  }
});

Deno.test("the function's folder, copied alone, type-checks and answers the documentation's cURL request", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const dir = await copyFunctionAlone();
  try {
    const check = await run(["check", "index.ts"], dir);
    assert.equal(check.code, 0, decode(check.stderr));

    const port = freePort();
    const server = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env", "index.ts"],
      cwd: dir,
      env: { DATABASE_URL: db.url, PORT: String(port) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      await waitForPort(port);
      const url = `http://127.0.0.1:${port}/functions/v1/ingest-data`;
      // The documentation's example, word for word but for the URL and key.
      const curl = await new Deno.Command("curl", {
        args: [
          "-sS",
          "-w",
          "\n%{http_code}",
          "-X",
          "POST",
          url,
          "--header",
          `Authorization: Bearer ${s.apiKey}`,
          "--header",
          "Content-Type: application/json",
          "--data-raw",
          `{
"temperature": 42.5,
"motor_stats": {
"rpm": 1500,
"vibration": 0.75
}
}`,
        ],
        stdout: "piped",
      }).output();
      const [body, status] = decode(curl.stdout).split("\n");
      assert.equal(status, "200", body);
      assert.deepEqual(JSON.parse(body!).stored, ["motor_stats", "temperature"]);
      const rows = await db.sql`select data_key, value from public.datasource_values order by data_key`;
      assert.deepEqual(rows.map((r) => [r.data_key, r.value]), [
        ["motor_stats", { rpm: 1500, vibration: 0.75 }],
        ["temperature", 42.5],
      ]);
    } finally {
      server.kill("SIGTERM");
      const out = await server.output();
      const logs = decode(out.stdout) + decode(out.stderr);
      assert.ok(!logs.includes(s.apiKey.slice(3)), "the key appears in the function's output");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
