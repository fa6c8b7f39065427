/// <reference lib="dom" />
/**
 * The live twin view's page script: signs in with the dev server's token,
 * lists the user's datasources (`twin_datasources()`, RLS-checked), builds
 * the scene and the text panel of the chosen one, reads the last hour of its
 * numeric widgets for their sparklines (`datasource_history()`), and keeps
 * everything live with the subscriber module.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { datasourceHistory } from "../datasource_history.ts";
import { watchDatasource } from "../watch_datasource.ts";
import { chooseDatasource, datasourceLabel } from "./datasources.ts";
import { createHighlightGate } from "./highlight_gate.ts";
import { createPanel } from "./panel.ts";
import { createTwinScene } from "./scene.ts";
import { createTrends, loadTrendHistory, TREND_INTERVAL, TREND_INTERVAL_MS, type Trends } from "./trends.ts";
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
  showLive(supabase, datasource);
}

/**
 * Builds the scene and the panel of `datasource` and keeps them live: the
 * last hour for the sparklines, the watch for the values, the highlight for
 * changes after the first read only, and the sparklines' window sliding on.
 */
function showLive(supabase: SupabaseClient, datasource: TwinDatasource): void {
  const trends = createTrends(datasource.widgets, Date.now());
  const scene = createTwinScene(element("scene"), datasource.widgets, trends);
  const panel = createPanel(element("widgets"), datasource.widgets, trends);
  const drawTrends = () => {
    const now = Date.now();
    trends.trim(now);
    panel.drawTrends(now);
    scene.drawTrends(now);
  };
  const readHistory = (range: { from: number; to: number }) =>
    void loadHistory(supabase, datasource.id, trends, range).then(drawTrends);
  readHistory(trends.history);
  // The first read shows what was stored before the page opened: nothing to highlight (every widget flashed).
  const gate = createHighlightGate();
  // Back after a drop, the catch-up read brings the latest values only: the history brings what came meanwhile.
  let away = false;
  const watch = watchDatasource(supabase, datasource.id, {
    onValues(values, changed) {
      trends.addValues(values, changed, gate.initial);
      trends.trim(Date.now());
      const highlighted = gate.highlighted(changed);
      panel.update(values, highlighted);
      scene.update(values, highlighted);
    },
    onStatus(status, detail) {
      if (status === "reconnecting" || status === "error") away = true;
      else if (status === "live" && away) {
        away = false;
        readHistory(trends.reread(Date.now()));
      }
      gate.status(status);
      setStatus(status, detail);
    },
  });
  // The sparklines' hour slides on: a redraw per bucket (one frame each 30 s) while any has points.
  const slide = setInterval(() => trends.hasPoints() && drawTrends(), TREND_INTERVAL_MS);
  addEventListener("pagehide", () => {
    clearInterval(slide);
    void watch.stop();
    scene.dispose();
  });
}

/**
 * Reads the hour `range` of every series the widgets draw, in 30-second
 * averages, into `trends`; says which could not be read (their sparklines
 * show the live values only).
 */
async function loadHistory(
  supabase: SupabaseClient,
  datasourceId: string,
  trends: Trends,
  range: { from: number; to: number },
): Promise<void> {
  const failed = await loadTrendHistory(trends, (keys, from, to) =>
    datasourceHistory(supabase, datasourceId, {
      keys,
      from: new Date(from),
      to: new Date(to),
      interval: TREND_INTERVAL,
      agg: "avg",
    }), range);
  if (failed.length > 0) showMessage(`The last hour of ${failed.join(", ")} could not be read: live values only.`);
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
