/**
 * The payload validators of the datasources an instance has seen, one per
 * datasource and widget configuration (`config_version`), built on first use.
 *
 * @module
 */
import type { PayloadLimits } from "./config.ts";
import { buildPayloadValidator, type PayloadValidator } from "./payload_schema.ts";
import type { ResolvedKey } from "./store.ts";

/** Most validators kept; the oldest is dropped first. */
const MAX_VALIDATORS = 10_000;

/** Returns `(key) => validator` for the key's datasource as configured now. */
export function createValidatorCache(limits: PayloadLimits): (key: ResolvedKey) => PayloadValidator {
  const validators = new Map<string, PayloadValidator>();
  return function validatorFor(key) {
    const id = `${key.datasource_id}:${key.config_version}`;
    let validator = validators.get(id);
    if (!validator) {
      if (validators.size >= MAX_VALIDATORS) validators.delete(validators.keys().next().value!);
      validator = buildPayloadValidator(key.widgets, limits);
      validators.set(id, validator);
    }
    return validator;
  };
}
