/**
 * A gateway's batch of readings `[{observed_at, values}]`, checked whole:
 * the issues of every reading (up to 100), with paths from the reading's index.
 *
 * @module
 */
import { HttpError, MAX_ISSUES, type PayloadIssue, payloadIssuesError } from "./http_error.ts";
import type { PayloadValidator } from "./payload_schema.ts";
import type { Reading } from "./store.ts";
import { formatTime, parseTime, TimeError } from "./time.ts";

/**
 * Checks a batch of readings `[{observed_at, values}]`: the issues of every
 * reading, with paths from the reading's index (`3.values.motor_stats.rpm`),
 * until {@linkcode MAX_ISSUES} are found.
 */
export function readReadings(
  list: unknown[],
  validator: PayloadValidator,
  options: { now: number; maxReadings: number },
): Reading[] {
  if (list.length === 0) {
    throw new HttpError(
      400,
      "invalid_payload",
      "Cannot parse payload: the array holds no readings; send at least one",
      {
        issues: [{ path: "", expected: "at least one reading {observed_at, values}", message: "the array is empty" }],
      },
    );
  }
  if (list.length > options.maxReadings) {
    const expected = `at most ${options.maxReadings} readings per request`;
    throw new HttpError(400, "limit_exceeded", `Cannot parse payload: the payload must have ${expected}`, {
      issues: [{ path: "", expected, message: `the payload has ${list.length} readings` }],
    });
  }
  const readings: Reading[] = [];
  const issues: PayloadIssue[] = [];
  let code = "invalid_payload";
  for (let i = 0; i < list.length && issues.length < MAX_ISSUES; i++) {
    const item = list[i];
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      const message = `"${i}" must be a reading: an object with observed_at and values`;
      issues.push({ path: String(i), expected: "an object with observed_at and values", message });
      continue;
    }
    const reading = item as Record<string, unknown>;
    for (const name of Object.keys(reading)) {
      if (name !== "observed_at" && name !== "values") {
        issues.push({ path: `${i}.${name}`, expected: "no such key", message: `"${i}.${name}" is not expected here` });
      }
    }
    let observedAt: string | undefined;
    if (!("observed_at" in reading)) {
      const message = `"${i}.observed_at" is required: the time of the reading`;
      issues.push({ path: `${i}.observed_at`, expected: "an ISO 8601 date-time or epoch milliseconds", message });
    } else {
      try {
        observedAt = formatTime(parseTime(reading.observed_at, options.now));
      } catch (error) {
        if (!(error instanceof TimeError)) throw error;
        const path = `${i}.observed_at`;
        issues.push({
          path,
          expected: "an ISO 8601 date-time with Z or an offset, or epoch milliseconds",
          message: `"${path}" ${error.message}`,
        });
      }
    }
    try {
      const values = validator.validate(reading.values);
      if (observedAt !== undefined) readings.push({ observedAt, values });
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      if (error.code !== "invalid_payload") code = error.code;
      const prefix = `${i}.values`;
      for (const issue of error.issues) {
        const path = issue.path ? `${prefix}.${issue.path}` : prefix;
        const message = issue.path
          ? issue.message.replace(`"${issue.path}"`, `"${path}"`)
          : issue.message.replace(/^the payload/, `"${path}"`);
        issues.push({ path, expected: issue.expected, message });
      }
    }
  }
  if (issues.length > 0) throw payloadIssuesError(code, issues);
  return readings;
}
