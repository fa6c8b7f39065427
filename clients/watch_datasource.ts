/**
 * What a twin dashboard imports to show a datasource live, in browsers and
 * Deno, with supabase-js only:
 *
 * ```ts
 * const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, { accessToken: async () => userJwt });
 * const watch = watchDatasource(supabase, datasourceId, {
 *   onValues: (values, changed) => render(values, changed),
 *   onStatus: (status, detail) => showStatus(status, detail),
 * });
 * // later: await watch.stop();
 * ```
 *
 * It reads the current values (`datasource_latest_values`, checked by row
 * level security), applies the `values` broadcasts of the private channel
 * `datasource:<id>`, reads again after every (re)subscription (Realtime keeps
 * no queue), drops messages it already applied (by id), and never lets an
 * older observation replace a newer one. A broadcast whose values were too
 * large to carry (`values_omitted`) makes it read the current values.
 *
 * @module
 */
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";

/** A SingleData value: a number or a string. */
export type SingleDataValue = number | string;
/** A DoubleData value: the widget's `primarySubKey` and `secondarySubKey` (`DoubleDataValue<"rpm", "vibration">`). */
export type DoubleDataValue<Primary extends string = string, Secondary extends string = string> = {
  [K in Primary | Secondary]: number | string;
};
/**
 * A BarChart or LineChart value: the widget's `labelsKey` (labels) and `valuesKey` (numbers), of equal length
 * (`ChartValue<"machines", "units_per_hour">`).
 */
export type ChartValue<Labels extends string = string, Values extends string = string> = string extends Labels | Values
  ? Record<string, (string | number)[]>
  : { [K in Labels]: (string | number)[] } & { [K in Values]: number[] };
/** Any widget's value. */
export type WidgetValue = SingleDataValue | DoubleDataValue | ChartValue;

/**
 * A datasource's DataKeys and the value type of each, from its widgets, e.g.
 * `{ temperature: SingleDataValue; motor_stats: DoubleDataValue<"rpm", "vibration"> }`; the default is any DataKey.
 */
export type DatasourceValues = Record<string, WidgetValue>;

/** The latest value of one DataKey, with its observation and arrival times (ISO 8601, UTC). */
export interface LatestValue<V extends WidgetValue = WidgetValue> {
  value: V;
  observed_at: string;
  received_at: string;
}

/** The latest value of each DataKey of `T` that has one. */
export type LatestValues<T extends Record<keyof T, WidgetValue> = DatasourceValues> = string extends keyof T
  ? Record<string, LatestValue<T[keyof T]>>
  : { [K in keyof T]?: LatestValue<T[K]> };

/** `connecting` at start, `live` once subscribed and read, `reconnecting` while the connection is down,
 * `error` when the server refused (realtime-js retries), `closed` after stop() or when the server closed the
 * channel (e.g. access revoked; detail says why). */
export type WatchStatus = "connecting" | "live" | "reconnecting" | "closed" | "error";

/** Callbacks of {@linkcode watchDatasource}; `T` types the values by DataKey (see {@linkcode DatasourceValues}). */
export interface WatchOptions<T extends Record<keyof T, WidgetValue> = DatasourceValues> {
  /** Called after the first read and whenever values change; `changed` lists the DataKeys that did. */
  onValues: (values: Readonly<LatestValues<T>>, changed: (keyof T & string)[]) => void;
  onStatus?: (status: WatchStatus, detail?: string) => void;
}

/** A running watch. */
export interface Watch<T extends Record<keyof T, WidgetValue> = DatasourceValues> {
  /** Leaves the channel; no callback is called afterwards. */
  stop(): Promise<void>;
  /** The current values. */
  values(): Readonly<LatestValues<T>>;
}

/** The broadcast payload the write functions send (`realtime.send` adds `id`). */
interface ValuesMessage {
  id?: string;
  datasource_id: string;
  observed_at?: string;
  /** Batches and readings: each DataKey's own observation time (`observed_at` is the newest of them). */
  observed_at_by_key?: Record<string, string>;
  received_at: string;
  values: Record<string, WidgetValue>;
  /** The values were larger than a broadcast may carry: read them (`observed_at_by_key` names the DataKeys). */
  values_omitted?: boolean;
}

const REMEMBERED_IDS = 1000;
const READ_RETRY_MS = 2000;

/**
 * Shows `datasourceId`'s latest values live; see the module documentation for the client setup. The values are
 * what the database accepted for the datasource's widgets; `T` only names their types, nothing checks it here.
 */
export function watchDatasource<T extends Record<keyof T, WidgetValue> = DatasourceValues>(
  supabase: SupabaseClient,
  datasourceId: string,
  options: WatchOptions<T>,
): Watch<T> {
  const topic = `datasource:${datasourceId}`;
  // supabase-js keeps one channel per topic: a second watch would share (and stop) the first one's.
  if (supabase.getChannels().some((c) => c.topic === `realtime:${topic}`)) {
    throw new Error(`Cannot watch datasource ${datasourceId} twice with one client: stop the first watch`);
  }
  const current: Record<string, LatestValue> = Object.create(null);
  const applied = new Set<string>();
  let channel: RealtimeChannel | null = null;
  let stopped = false;
  let readOnce = false;
  let reads = 0;
  let lastSystemMessage: string | undefined;

  function status(value: WatchStatus, detail?: string) {
    if (!stopped || value === "closed") options.onStatus?.(value, detail);
  }

  /** The current values, typed as the caller named them (the one place `T` meets the untyped messages). */
  function snapshot(): Readonly<LatestValues<T>> {
    return Object.freeze({ ...current }) as Readonly<LatestValues<T>>;
  }

  function emit(changed: string[]) {
    options.onValues(snapshot(), changed as (keyof T & string)[]);
  }

  /** Stores `candidate` unless the stored value was observed later (ties: the later arrival wins). */
  function offer(dataKey: string, candidate: LatestValue): boolean {
    const stored = current[dataKey];
    if (stored && compare(candidate, stored) < 0) return false;
    if (
      stored && compare(candidate, stored) === 0 && JSON.stringify(stored.value) === JSON.stringify(candidate.value)
    ) {
      return false;
    }
    current[dataKey] = candidate;
    return true;
  }

  function onMessage(message: { payload?: ValuesMessage; meta?: { id?: string } }) {
    const payload = message.payload;
    if (stopped || !payload) return;
    const id = message.meta?.id ?? payload.id;
    if (id) {
      if (applied.has(id)) return;
      applied.add(id);
      if (applied.size > REMEMBERED_IDS) applied.delete(applied.values().next().value!);
    }
    if (payload.values_omitted === true) return readSafely();
    if (typeof payload.values !== "object" || payload.values === null) return;
    const received_at = utc(payload.received_at);
    // Each DataKey's observation time when the message has them, else the message's; a message without
    // either (sent by an older migration) carries values observed when received.
    const observedAt = (dataKey: string) =>
      utc(payload.observed_at_by_key?.[dataKey] ?? payload.observed_at ?? payload.received_at);
    const changed = Object.entries(payload.values)
      .filter(([dataKey, value]) => offer(dataKey, { value, observed_at: observedAt(dataKey), received_at }))
      .map(([dataKey]) => dataKey);
    if (changed.length > 0) emit(changed);
  }

  async function read() {
    const attempt = ++reads;
    const { data, error } = await supabase.rpc("datasource_latest_values", { p_datasource_id: datasourceId });
    if (stopped || attempt !== reads) return;
    if (error) {
      status("error", `Cannot read the current values: ${error.message}`);
      // Broadcasts still apply meanwhile; read again while the channel stays joined.
      setTimeout(() => {
        if (!stopped && attempt === reads && channel?.state === "joined") readSafely();
      }, READ_RETRY_MS);
      return;
    }
    const rows = (data ?? []) as { data_key: string; value: WidgetValue; observed_at: string; received_at: string }[];
    const changed = rows
      .filter((row) =>
        offer(row.data_key, { value: row.value, observed_at: utc(row.observed_at), received_at: utc(row.received_at) })
      )
      .map((row) => row.data_key);
    if (changed.length > 0 || !readOnce) emit(changed);
    readOnce = true;
    status("live");
  }

  function readSafely() {
    read().catch((e) => status("error", `Cannot read the current values: ${(e as Error).message}`));
  }

  async function start() {
    status("connecting");
    // supabase-js resolves the user's token asynchronously: a join sent before it is known carries the anon
    // key and is refused, so wait for it first.
    await supabase.realtime.setAuth();
    if (stopped) return;
    channel = supabase
      .channel(topic, { config: { private: true } })
      .on("broadcast", { event: "values" }, onMessage)
      .on("system", {}, (payload: { status?: string; message?: string }) => {
        if (payload?.status === "error") lastSystemMessage = payload.message;
      })
      .subscribe((state, error) => {
        if (stopped) return;
        if (state === "SUBSCRIBED") {
          readSafely();
        } else if (state === "CHANNEL_ERROR") {
          const reason = refusalReason(error);
          if (reason) status("error", reason);
          else status("reconnecting", error?.message);
        } else if (state === "TIMED_OUT") {
          status("reconnecting", "Timed out joining the channel");
        } else if (state === "CLOSED") {
          status("closed", lastSystemMessage ?? "The channel was closed");
        }
      });
  }

  const started = start().catch((e) => status("error", (e as Error).message));

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      await started;
      if (channel) await supabase.removeChannel(channel);
      options.onStatus?.("closed");
    },
    values: snapshot,
  };
}

/**
 * The server's reason when CHANNEL_ERROR is a refused join (realtime-js passes the reply `{reason}` as the
 * error's cause); undefined when the connection was lost (a CloseEvent or transport event, with a numeric code).
 */
function refusalReason(error: Error | undefined): string | undefined {
  const cause = error?.cause as { reason?: unknown; code?: unknown } | undefined;
  if (!cause || typeof cause !== "object" || typeof cause.code === "number" || cause instanceof Event) return undefined;
  return typeof cause.reason === "string" ? cause.reason : undefined;
}

/** Orders two observations of one DataKey: by observed_at, then received_at. */
function compare(a: LatestValue, b: LatestValue): number {
  return Date.parse(a.observed_at) - Date.parse(b.observed_at) ||
    Date.parse(a.received_at) - Date.parse(b.received_at);
}

/** An ISO 8601 time in UTC with `Z` and milliseconds. */
function utc(time: string): string {
  return new Date(time).toISOString();
}
