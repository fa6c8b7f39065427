/**
 * What the twin view shows: the caller's datasources and their widgets, as
 * `public.twin_datasources()` returns them.
 *
 * @module
 */

/** The four widget types of the product. */
export type WidgetType = "SingleData" | "DoubleData" | "BarChart" | "LineChart";

/** A widget linked to a datasource; `settings` holds its sub-keys (DoubleData) or labels/values keys (charts). */
export interface TwinWidget {
  id: string;
  name: string;
  widget_type: WidgetType;
  data_key: string;
  settings: {
    primarySubKey?: string;
    secondarySubKey?: string;
    labelsKey?: string;
    valuesKey?: string;
  };
}

/** A datasource the caller may watch, with its workspace and widgets. */
export interface TwinDatasource {
  id: string;
  name: string;
  enabled: boolean;
  workspace_id: string;
  workspace_name: string;
  widgets: TwinWidget[];
}

/** The latest value of a DataKey as the page shows it (the subscriber's LatestValue fits). */
export interface ShownValue {
  value: unknown;
  observed_at: string;
}
