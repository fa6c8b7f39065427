/**
 * Where a number sits between the lowest and highest of a set, for the
 * scene's bars, lines and gauges: any JSON number (±1.8e308 included) gives
 * a share in 0..1, never NaN, although `high - low` may exceed
 * `Number.MAX_VALUE`.
 *
 * @module
 */

/**
 * A function placing numbers in 0..1 between the lowest (0) and highest (1)
 * finite number of `domain`: outside values are clamped, `Infinity` is 1,
 * `-Infinity` and `NaN` are 0, and every value is 0 when the domain has no
 * width.
 */
export function unitScale(domain: readonly number[]): (value: number) => number {
  let low = Infinity;
  let high = -Infinity;
  for (const value of domain) {
    if (!Number.isFinite(value)) continue;
    low = Math.min(low, value);
    high = Math.max(high, value);
  }
  // high - low overflows to Infinity beyond MAX_VALUE; halved, the span of two finite numbers never does (but
  // halving loses the smallest subnormals, so only when needed).
  const halve = !Number.isFinite(high - low);
  const span = halve ? high / 2 - low / 2 : high - low;
  const offset = halve ? (value: number) => value / 2 - low / 2 : (value: number) => value - low;
  return (value) => {
    if (value === Infinity) return 1;
    if (!(value > -Infinity) || !(span > 0)) return 0;
    return Math.min(1, Math.max(0, offset(value) / span));
  };
}

/**
 * Like {@linkcode unitScale}, for lines and sparklines rather than bars: the
 * domain is the values' own range (0 need not be in it), and a domain without
 * width places its finite values in the middle (0.5), not at the bottom.
 */
export function lineScale(domain: readonly number[]): (value: number) => number {
  const finite = domain.filter(Number.isFinite);
  const flat = finite.length === 0 || finite.every((value) => value === finite[0]);
  if (!flat) return unitScale(finite);
  return (value) => value === Infinity ? 1 : Number.isFinite(value) ? 0.5 : 0;
}
