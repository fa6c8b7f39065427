/// <reference lib="dom" />
/**
 * The live twin view's page script: signs in with the dev server's token,
 * lists the user's datasources (`twin_datasources()`, RLS-checked), builds
 * the scene and the text panel of the chosen one, and keeps both live with
 * the subscriber module.
 *
 * @module
 */
import { createClient } from "@supabase/supabase-js";
import { watchDatasource } from "../watch_datasource.ts";
import { chooseDatasource, datasourceLabel } from "./datasources.ts";
import { createPanel } from "./panel.ts";
import { createTwinScene } from "./scene.ts";
import type { TwinDatasource } from "./types.ts";

/** What the page needs to reach Supabase: served by the dev server at `/twin_view/config.json`. */
interface TwinViewConfig {
  supabaseUrl: string;
  anonKey: string;
  accessToken: string;
}

const STATUS_TEXT: Record<string, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Closed",
  error: "Error",
};

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

await start().catch((error) => {
  setStatus("error", error instanceof Error ? error.message : String(error));
  showMessage(`Cannot show the twin: ${error instanceof Error ? error.message : error}`);
});

async function start(): Promise<void> {
  const response = await fetch("/twin_view/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`the dev server answered ${response.status} for its configuration`);
  const config = await response.json() as TwinViewConfig;
  // The token goes through the accessToken option: supabase-js 2.119 overrides a bare setAuth() with its own.
  const supabase = createClient(config.supabaseUrl, config.anonKey, {
    accessToken: () => Promise.resolve(config.accessToken),
  });

  const { data, error } = await supabase.rpc("twin_datasources");
  if (error) throw new Error(`cannot list your datasources: ${error.message}`);
  const list = data as TwinDatasource[];
  const choice = chooseDatasource(list, new URLSearchParams(location.search).get("datasource"));
  showPicker(list, "datasource" in choice ? choice.datasource.id : null);
  if (!("datasource" in choice)) {
    setStatus("closed", "nothing to watch");
    showMessage(choice.problem);
    return;
  }
  const datasource = choice.datasource;
  document.title = `${datasource.name} · Twinnoverse live twin`;
  element("datasource-name").textContent = datasourceLabel(datasource);
  if (datasource.widgets.length === 0) showMessage("This datasource has no widgets yet: link some to see them here.");
  else if (!datasource.enabled) showMessage("This datasource is disabled: it accepts no new values.");

  const scene = createTwinScene(element("scene"), datasource.widgets);
  const panel = createPanel(element("widgets"), datasource.widgets);
  const watch = watchDatasource(supabase, datasource.id, {
    onValues(values, changed) {
      panel.update(values, changed);
      scene.update(values, changed);
    },
    onStatus: setStatus,
  });
  addEventListener("pagehide", () => {
    void watch.stop();
    scene.dispose();
  });
}

/** The picker lists the user's datasources when there are several; choosing one opens `?datasource=<id>`. */
function showPicker(list: readonly TwinDatasource[], current: string | null): void {
  if (list.length < 2) return;
  const select = element<HTMLSelectElement>("datasource-picker");
  select.replaceChildren(
    ...list.map((d) => new Option(datasourceLabel(d), d.id, false, d.id === current)),
  );
  if (!current) select.prepend(new Option("Choose a datasource", "", true, true));
  select.addEventListener("change", () => {
    if (select.value) location.search = `?datasource=${encodeURIComponent(select.value)}`;
  });
  element("picker").hidden = false;
}

function setStatus(status: string, detail?: string): void {
  const badge = element("status");
  badge.dataset.status = status;
  badge.textContent = STATUS_TEXT[status] ?? status;
  badge.title = detail ?? "";
}

function showMessage(text: string): void {
  const message = element("message");
  message.textContent = text;
  message.hidden = false;
}
