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
import type { REALTIME_SUBSCRIBE_STATES, RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import {
  type Current,
  emptyCurrent,
  firstSeen,
  type LatestRow,
  offerMessage,
  offerRows,
  type ValuesMessage,
} from "./latest_values.ts";

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

/** A broadcast as realtime-js hands it over: the payload, and (since realtime.send adds it) the message id. */
interface BroadcastMessage {
  payload?: ValuesMessage;
  meta?: { id?: string };
}

/** One watch, as the steps below share it. */
interface WatchState {
  readonly supabase: SupabaseClient;
  readonly datasourceId: string;
  readonly topic: string;
  /** The caller's callbacks; `onStatus` is called only through {@linkcode status} (and by stop). */
  readonly options: Pick<WatchOptions, "onStatus">;
  /** Calls the caller's `onValues` with the current values. */
  readonly emit: (changed: string[]) => void;
  readonly current: Current;
  /** The ids of the messages applied, the oldest first. */
  readonly applied: Set<string>;
  channel: RealtimeChannel | null;
  stopped: boolean;
  readOnce: boolean;
  /** How many reads started: only the latest one's answer counts. */
  reads: number;
  lastSystemMessage: string | undefined;
}

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
  const current = emptyCurrent();
  const state: WatchState = {
    supabase,
    datasourceId,
    topic,
    options,
    emit: (changed) => options.onValues(snapshot<T>(current), changed as (keyof T & string)[]),
    current,
    applied: new Set(),
    channel: null,
    stopped: false,
    readOnce: false,
    reads: 0,
    lastSystemMessage: undefined,
  };
  const started = start(state).catch((e) => status(state, "error", (e as Error).message));
  return {
    stop: () => stop(state, started),
    values: () => snapshot<T>(current),
  };
}

/** The current values, typed as the caller named them (the one place `T` meets the untyped messages). */
function snapshot<T extends Record<keyof T, WidgetValue>>(current: Current): Readonly<LatestValues<T>> {
  return Object.freeze({ ...current }) as Readonly<LatestValues<T>>;
}

/** Reports `value` to the caller, unless the watch was stopped (then only `closed`). */
function status(state: WatchState, value: WatchStatus, detail?: string) {
  if (!state.stopped || value === "closed") state.options.onStatus?.(value, detail);
}

/** Joins the channel once the user's token is known; reads after each subscription. */
async function start(state: WatchState) {
  status(state, "connecting");
  // supabase-js resolves the user's token asynchronously: a join sent before it is known carries the anon
  // key and is refused, so wait for it first.
  await state.supabase.realtime.setAuth();
  if (state.stopped) return;
  state.channel = subscribe(state);
}

/** The private channel of the datasource, subscribed, with its listeners. */
function subscribe(state: WatchState): RealtimeChannel {
  return state.supabase
    .channel(state.topic, { config: { private: true } })
    .on("broadcast", { event: "values" }, (message: BroadcastMessage) => onMessage(state, message))
    .on("system", {}, (payload: { status?: string; message?: string }) => {
      if (payload?.status === "error") state.lastSystemMessage = payload.message;
    })
    .subscribe((channelState, error) => onChannelState(state, channelState, error));
}

/** Reads the current values after each (re)subscription; reports the channel's other states. */
function onChannelState(state: WatchState, channelState: REALTIME_SUBSCRIBE_STATES, error: Error | undefined) {
  if (state.stopped) return;
  if (channelState === "SUBSCRIBED") {
    readSafely(state);
  } else if (channelState === "CHANNEL_ERROR") {
    const reason = refusalReason(error);
    if (reason) status(state, "error", reason);
    else status(state, "reconnecting", error?.message);
  } else if (channelState === "TIMED_OUT") {
    status(state, "reconnecting", "Timed out joining the channel");
  } else if (channelState === "CLOSED") {
    status(state, "closed", state.lastSystemMessage ?? "The channel was closed");
  }
}

/** Applies a `values` broadcast once (by id): its values, or a read when they were omitted. */
function onMessage(state: WatchState, message: BroadcastMessage) {
  const payload = message.payload;
  if (state.stopped || !payload) return;
  const id = message.meta?.id ?? payload.id;
  if (id && !firstSeen(state.applied, id)) return;
  if (payload.values_omitted === true) return readSafely(state);
  const changed = offerMessage(state.current, payload);
  if (changed.length > 0) state.emit(changed);
}

/** Reads the current values; the first read emits even when nothing is stored, later ones only changes. */
async function read(state: WatchState) {
  const attempt = ++state.reads;
  const { data, error } = await state.supabase.rpc("datasource_latest_values", { p_datasource_id: state.datasourceId });
  if (state.stopped || attempt !== state.reads) return;
  if (error) return retryRead(state, attempt, error.message);
  const changed = offerRows(state.current, (data ?? []) as LatestRow[]);
  if (changed.length > 0 || !state.readOnce) state.emit(changed);
  state.readOnce = true;
  status(state, "live");
}

/** Reports the failed read `attempt` and reads again later, unless another read started meanwhile. */
function retryRead(state: WatchState, attempt: number, message: string) {
  status(state, "error", `Cannot read the current values: ${message}`);
  // Broadcasts still apply meanwhile; read again while the channel stays joined.
  setTimeout(() => {
    if (!state.stopped && attempt === state.reads && state.channel?.state === "joined") readSafely(state);
  }, READ_RETRY_MS);
}

/** Reads, reporting a thrown error as a status. */
function readSafely(state: WatchState) {
  read(state).catch((e) => status(state, "error", `Cannot read the current values: ${(e as Error).message}`));
}

/** Stops the watch: no callback afterwards but the final `closed`, once the channel is left. */
async function stop(state: WatchState, started: Promise<unknown>) {
  if (state.stopped) return;
  state.stopped = true;
  await started;
  if (state.channel) await state.supabase.removeChannel(state.channel);
  state.options.onStatus?.("closed");
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
