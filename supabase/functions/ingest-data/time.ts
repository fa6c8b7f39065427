/**
 * Observation times: ISO 8601 with `Z` or an offset, or integer epoch
 * milliseconds, and nothing that could be read two ways.
 *
 * Hand-written rather than `Date.parse`, which rolls impossible dates over
 * (2026-02-30 becomes 2 March), reads a time without an offset in the
 * server's zone and accepts year 0, which PostgreSQL cannot store.
 *
 * @module
 */

/** How far in the future a time may be (clock skew of devices). */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
/** The earliest time accepted: 0001-01-01T00:00:00Z (PostgreSQL reads year 0 and before differently). */
export const MIN_TIME_MS = -62_135_596_800_000;
/** Integers below this are epoch seconds, not milliseconds (1e11 ms is March 1973; 1e11 s is the year 5138). */
const SECONDS_LOOKALIKE_BELOW = 1e11;

const ISO = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}:?\d{2})?$/;
/**
 * RFC 3339 (5.6, note) lets a space stand for the T, as Python's `str(datetime)` and PostgreSQL's text
 * output write it (`2026-11-26 10:00:00+00:00`): accepted only with seconds and Z or an offset.
 */
const SPACED = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:[Zz]|[+-]\d{2}:?\d{2}))$/;
const PLUS_AS_SPACE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)? \d{2}:?\d{2}$/;

/** Why a time was refused: the sentence after `"<path>" `. */
export class TimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeError";
  }
}

/**
 * Reads an observation time: an ISO 8601 string with `Z` or an offset, an
 * integer of epoch milliseconds, or a string of its digits (query strings).
 * Returns epoch milliseconds; throws a TimeError saying why it cannot.
 */
export function parseTime(raw: unknown, now: number): number {
  let ms: number;
  if (typeof raw === "number") ms = fromEpochMs(raw);
  else if (typeof raw === "string" && /^-?\d+$/.test(raw)) ms = fromEpochMs(Number(raw));
  else if (typeof raw === "string") ms = fromIso(raw);
  else throw new TimeError("must be an ISO 8601 date-time with Z or an offset, or epoch milliseconds");
  if (ms < MIN_TIME_MS) throw new TimeError("must be 0001-01-01T00:00:00Z or later");
  if (ms > now + MAX_FUTURE_SKEW_MS) {
    throw new TimeError("must not be more than 5 minutes in the future (check the device's clock)");
  }
  return ms;
}

/** A time as every response writes it: UTC, `Z`, milliseconds (`2026-11-26T10:00:00.000Z`). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString();
}

function fromEpochMs(n: number): number {
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) {
    throw new TimeError(`is out of range (${n}): epoch milliseconds must be at most ${Number.MAX_SAFE_INTEGER}`);
  }
  if (!Number.isSafeInteger(n)) throw new TimeError("must be an integer number of epoch milliseconds");
  if (n >= 0 && n < SECONDS_LOOKALIKE_BELOW) {
    throw new TimeError(
      `looks like epoch seconds (${n}): send epoch milliseconds (${n} * 1000) or an ISO 8601 date-time`,
    );
  }
  if (n < 0) throw new TimeError("must be epoch milliseconds after 1970, or an ISO 8601 date-time");
  return n;
}

function fromIso(text: string): number {
  if (PLUS_AS_SPACE.test(text)) {
    throw new TimeError(
      `has a space where its offset's "+" should be: URL-encode the time in a query string ("+" is %2B)`,
    );
  }
  const m = ISO.exec(text.replace(SPACED, "$1T$2"));
  if (!m) throw new TimeError("must be an ISO 8601 date-time such as 2026-11-26T10:00:00Z, or epoch milliseconds");
  const [, y, mo, d, h, mi, s = "0", fraction = "", zone] = m;
  if (!zone) throw new TimeError("has no UTC offset: add Z (UTC) or an offset such as +01:00");
  const year = +y!, month = +mo!, day = +d!, hour = +h!, minute = +mi!, second = +s;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) {
    throw new TimeError(`is not a date that exists (${y}-${mo}-${d})`);
  }
  if (hour > 23 || minute > 59 || second > 59) {
    throw new TimeError(`is not a time of day that exists (${h}:${mi}:${s})`);
  }
  let offsetMin = 0;
  if (zone !== "Z" && zone !== "z") {
    const digits = zone.replace(":", "");
    const oh = +digits.slice(1, 3), om = +digits.slice(3, 5);
    if (oh > 23 || om > 59) throw new TimeError(`has an offset that does not exist (${zone})`);
    offsetMin = (zone[0] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const ms = +(fraction + "00").slice(0, 3);
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  return date.getTime() - offsetMin * 60_000;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}
