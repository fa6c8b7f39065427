/**
 * SQL string literals, for the store's queries sent in one round trip.
 *
 * Without named prepared statements (`prepare: false`, which Supabase's
 * transaction pooler needs), postgres.js sends a query with parameters in two
 * round trips: Parse and Describe, then Bind and Execute once the server has
 * said the parameters' types. The store's hot queries send their values as
 * literals with the simple query protocol instead: one round trip.
 *
 * @module
 */

/**
 * `text` as an escape string literal (`E'…'`): backslashes and quotes doubled,
 * which reads back as `text` whatever `standard_conforming_strings` is.
 */
export function sqlLiteral(text: string): string {
  if (text.includes("\0")) throw new TypeError("Cannot quote text for SQL: it contains a NUL character");
  return `E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}
