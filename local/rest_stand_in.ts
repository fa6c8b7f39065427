/**
 * A stand-in for Supabase's REST API (PostgREST), as narrow as this project
 * needs: `POST /rest/v1/rpc/<name>` for SQL functions in schema `public`
 * (the function's `supabase` store and the dashboards' first read). Like
 * PostgREST it verifies the JWT in `Authorization` (else the `apikey`), runs
 * the call in a transaction as the token's role with `request.jwt.claims`
 * set, and answers errors as `{code, message, details, hint}` with
 * PostgREST's status mapping. Like PostgREST it runs every request on the
 * authenticator's connection (authenticator.ts): a token whose role the
 * authenticator cannot become is refused by PostgreSQL (42501, 403; an unknown
 * role 22023, 401). PostgREST itself cannot run here (no Docker); this is not
 * PostgREST: no tables, filters, select or Prefer headers.
 *
 * @module
 */
import type { TransactionSql } from "postgres";
import { type Authenticator, becomeRole, identifier, literal } from "./authenticator.ts";
import { type Claims, TokenError, verifyToken } from "./jwt.ts";

/** What the REST stand-in needs: the authenticator's pool and the JWT secret. */
export interface RestStandInOptions {
  authenticator: Authenticator;
  jwtSecret: string;
}

interface Signature {
  args: { name: string; type: string; variadic: boolean }[];
  required: number;
  returnsSet: boolean;
  returnsComposite: boolean;
}

const PREFIX = "/rest/v1/rpc/";
/** The most of a request body the stand-in reads (1 MiB); more is a 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Handles `/rest/v1/...` requests; anything but `POST /rest/v1/rpc/<name>` is a PostgREST-shaped error. */
export function createRestStandIn(options: RestStandInOptions): (request: Request) => Promise<Response> {
  const { authenticator, jwtSecret } = options;
  return async (request) => {
    const path = new URL(request.url).pathname;
    if (!path.startsWith(PREFIX)) {
      return error(
        404,
        "PGRST125",
        "Invalid path specified in request URL",
        "The REST stand-in serves /rest/v1/rpc/<function> only",
      );
    }
    if (request.method !== "POST") {
      return error(405, "PGRST117", `Unsupported HTTP method: ${request.method}`, "The REST stand-in serves POST only");
    }
    let name: string;
    try {
      name = decodeURIComponent(path.slice(PREFIX.length));
    } catch {
      return error(
        400,
        "PGRST125",
        "Invalid path specified in request URL",
        `The function name ${JSON.stringify(path.slice(PREFIX.length))} is not valid percent-encoding`,
      );
    }
    const token = request.headers.get("authorization")?.replace(/^Bearer\s+/i, "") || request.headers.get("apikey");
    if (!token) return Response.json({ message: "No API key found in request" }, { status: 401 });
    let claims: Claims;
    try {
      claims = await verifyToken(token, jwtSecret);
    } catch (e) {
      const expired = e instanceof TokenError && e.reason === "expired";
      return error(401, expired ? "PGRST303" : "PGRST301", expired ? "JWT expired" : (e as Error).message);
    }
    const text = await readBody(request);
    if (text === null) {
      return error(
        413,
        "PT413", // PostgREST's own convention: PTxxx answers status xxx
        "Payload Too Large",
        `The REST stand-in reads request bodies of at most ${MAX_BODY_BYTES} bytes`,
      );
    }
    let body: unknown;
    try {
      body = text === "" ? {} : JSON.parse(text);
    } catch {
      return error(400, "PGRST102", "Empty or invalid json");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return error(400, "PGRST102", "The request body must be a JSON object of named arguments");
    }
    try {
      const result = await authenticator.begin((tx) => rpc(tx, name, body as Record<string, unknown>, claims));
      return result.found ? Response.json(result.value) : error(404, "PGRST202", result.message);
    } catch (e) {
      const { code = "XX000", message, detail = null, hint = null } = e as {
        code?: string;
        message: string;
        detail?: string | null;
        hint?: string | null;
      };
      return error(statusOf(code, claims.role, message), code, message, detail, hint);
    }
  };
}

/** The body as text, or null when it is over {@linkcode MAX_BODY_BYTES} (then read no further). */
async function readBody(request: Request): Promise<string | null> {
  if (Number(request.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) return null;
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null; // leaving the loop cancels the stream
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  chunks.reduce((offset, chunk) => (bytes.set(chunk, offset), offset + chunk.length), 0);
  return new TextDecoder().decode(bytes);
}

type RpcResult = { found: true; value: unknown } | { found: false; message: string };

/** Finds the function for `args` (as the authenticator) and calls it as the token's role, in one transaction. */
async function rpc(
  tx: TransactionSql,
  name: string,
  args: Record<string, unknown>,
  claims: Claims,
): Promise<RpcResult> {
  const signature = await findFunction(tx, name, Object.keys(args));
  if (!signature) {
    const given = Object.keys(args).sort().join(", ");
    return { found: false, message: `Could not find the function public.${name}(${given}) in the schema cache` };
  }
  return { found: true, value: await call(tx, name, signature, args, claims) };
}

/** The overload of public.`name` whose named arguments fit `given` (PostgREST picks by argument names). */
async function findFunction(tx: TransactionSql, name: string, given: string[]): Promise<Signature | null> {
  const rows = await tx`
    select coalesce(p.proargnames, '{}') as names, p.pronargs::int as nargs, p.pronargdefaults::int as defaults,
      p.provariadic <> 0 as variadic, p.proretset as returns_set, t.typtype = 'c' as returns_composite,
      array(select format_type(x, null) from unnest(p.proargtypes::oid[]) x) as types
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
    where n.nspname = 'public' and p.proname = ${name} and p.prokind = 'f'`;
  for (const row of rows) {
    const names = (row.names as string[]).slice(0, row.nargs);
    if (names.length < row.nargs || given.some((g) => !names.includes(g))) continue;
    const required = row.nargs - row.defaults;
    if (names.slice(0, required).some((n) => !given.includes(n))) continue;
    return {
      args: names.map((n, i) => ({
        name: n,
        type: (row.types as string[])[i]!,
        variadic: row.variadic && i === names.length - 1,
      })),
      required,
      returnsSet: row.returns_set,
      returnsComposite: row.returns_composite,
    };
  }
  return null;
}

/** Calls the function as the token's role, with its claims, as PostgREST does; returns the JSON answer. */
async function call(
  tx: TransactionSql,
  name: string,
  signature: Signature,
  args: Record<string, unknown>,
  claims: Claims,
): Promise<unknown> {
  // Named arguments read from the one jsonb parameter, cast to each argument's type.
  const named = signature.args.filter((a) => a.name in args).map((a) => {
    const value = a.type === "jsonb" || a.type === "json"
      ? `($1::jsonb -> ${literal(a.name)})::${a.type}`
      : a.type.endsWith("[]")
      ? `array(select jsonb_array_elements_text($1::jsonb -> ${literal(a.name)}))::${a.type}`
      : `($1::jsonb ->> ${literal(a.name)})::${a.type}`;
    return `${a.variadic ? "variadic " : ""}${identifier(a.name)} => ${value}`;
  });
  const callText = `public.${identifier(name)}(${named.join(", ")})`;
  const query = signature.returnsSet
    ? `select coalesce(jsonb_agg(to_jsonb(r)), '[]'::jsonb) as r from ${callText} r`
    : signature.returnsComposite
    ? `select to_jsonb(r) as r from ${callText} r`
    : `select to_jsonb(${callText}) as r`;
  // The role first: PostgreSQL refuses one the authenticator was not granted, before anything runs.
  await becomeRole(tx, claims.role, {
    "request.jwt.claims": JSON.stringify(claims),
    "request.method": "POST",
    "request.path": `/rpc/${name}`,
  });
  // A call without arguments has no $1: PostgreSQL cannot type an unused parameter (42P18).
  const [row] = await tx.unsafe(query, named.length > 0 ? [args as never] : []);
  return row!.r;
}

/**
 * PostgREST's mapping of SQLSTATE to HTTP status (docs.postgrest.org, "Errors";
 * PostgREST.Error.mapSQLtoHTTP); PTxxx gives xxx, a token's role that does not exist 401.
 */
export function statusOf(code: string, role: string, message = ""): number {
  if (/^PT\d{3}$/.test(code)) return Number(code.slice(2));
  if (code === "22023") return /^role .* does not exist$/.test(message) ? 401 : 400;
  const exact: Record<string, number> = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "P0001": 400,
    "42501": role === "anon" ? 401 : 403,
  };
  if (code in exact) return exact[code]!;
  const classes: Record<string, number> = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
  };
  return classes[code.slice(0, 2)] ?? 400;
}

function error(
  status: number,
  code: string,
  message: string,
  details: string | null = null,
  hint: string | null = null,
) {
  // PostgREST adds WWW-Authenticate to every 401.
  const headers: HeadersInit = status === 401 ? { "WWW-Authenticate": "Bearer" } : {};
  return Response.json({ code, details, hint, message }, { status, headers });
}
