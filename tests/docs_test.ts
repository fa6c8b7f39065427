/**
 * The documentation stays true to the code: every machine error code the
 * function can answer with is in the README's responses table and in the
 * API reference, and every relative link (and its #anchor) leads somewhere.
 */
import assert from "node:assert/strict";
import { errorCodesInSource } from "./support/error_codes.ts";

const ROOT = new URL("../", import.meta.url);

/** The table rows of a Markdown text that start with a status. */
function statusRows(markdown: string): Map<number, string> {
  const rows = new Map<number, string>();
  for (const match of markdown.matchAll(/^\| (\d{3}) +\|(.*)$/gm)) {
    rows.set(+match[1]!, (rows.get(+match[1]!) ?? "") + match[2]);
  }
  return rows;
}

for (const file of ["README.md", "docs/api.md"]) {
  Deno.test(`${file} lists every status and error code the function answers with`, async () => {
    const codes = await errorCodesInSource();
    assert.ok(codes.size >= 15, `found only ${codes.size} codes: the scan is broken`);
    const rows = statusRows(await Deno.readTextFile(new URL(file, ROOT)));
    for (const [code, status] of codes) {
      assert.ok(rows.get(status)?.includes(`\`${code}\``), `${file}: no row ${status} with \`${code}\``);
    }
  });
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
}

Deno.test("relative links in README.md and docs/ lead to files and headings that exist", async () => {
  const files = ["README.md", "clients/README.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [path, anchor] = target!.split("#");
      const url = path ? new URL(path, new URL(file, ROOT)) : new URL(file, ROOT);
      const stat = await Deno.stat(url).catch(() => null);
      assert.ok(stat, `${file}: link to ${target} leads nowhere`);
      if (anchor && stat.isFile) {
        const headings = [...(await Deno.readTextFile(url)).matchAll(/^#+ (.*)$/gm)].map((m) => anchorOf(m[1]!));
        assert.ok(headings.includes(anchor), `${file}: link to ${target}: no such heading`);
      }
    }
  }
});
