/**
 * Which datasource the twin view opens: the one named by `?datasource=<id>`,
 * else the first of the caller's.
 *
 * @module
 */
import type { TwinDatasource } from "./types.ts";

/** The datasource to show, or the reason there is none. */
export type Choice = { datasource: TwinDatasource } | { problem: string };

/** Picks `requested` among `list` (or the first when none is requested). */
export function chooseDatasource(list: readonly TwinDatasource[], requested: string | null): Choice {
  if (requested) {
    const found = list.find((d) => d.id === requested);
    if (found) return { datasource: found };
    return {
      problem: `Datasource ${requested} is not one of yours (or does not exist): pick one of your datasources.`,
    };
  }
  const [first] = list;
  if (first) return { datasource: first };
  return { problem: "You are not a member of any workspace with a datasource yet." };
}

/** How the picker names a datasource: `Workspace / Datasource`. */
export function datasourceLabel(datasource: TwinDatasource): string {
  return `${datasource.workspace_name} / ${datasource.name}`;
}
