/**
 * Supabase-style JWTs for the local stack, with `jose`: HS256 tokens signed
 * with `SUPABASE_JWT_SECRET`, else the dev database's own random secret (made
 * with the database, kept in `.dev-db/jwt_secret`, mode 0600), minted for
 * users and the anon key, and verified the way Supabase Realtime and PostgREST
 * verify them. The Supabase CLI's published default secret is never a
 * fallback: anyone can sign with it, so a web page could forge tokens.
 *
 * @module
 */
import { decodeJwt, errors, jwtVerify, SignJWT } from "jose";

/** The Supabase CLI's published local default JWT secret (`supabase start`): for tests and parity checks only. */
export const DEFAULT_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** The expiry of the Supabase CLI's local anon key (2032-11-12). */
const CLI_ANON_KEY_EXP = 1983812996;

/** The claims of a verified token: `role` and `exp` always present. */
export interface Claims {
  role: string;
  exp: number;
  sub?: string;
  [claim: string]: unknown;
}

/** Why a token was refused; `message` is the text Supabase Realtime gives for it. */
export class TokenError extends Error {
  constructor(readonly reason: "malformed" | "signature" | "expired" | "missing_claims", message: string) {
    super(message);
    this.name = "TokenError";
  }
}

/** Where a dev database's secret is kept, in its folder. */
const SECRET_FILE = "jwt_secret";

/** The dev database's folder: INGEST_DEV_DIR, else `.dev-db/` at the project root (with a trailing slash). */
export function devDir(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  return env.INGEST_DEV_DIR?.replace(/\/?$/, "/") ?? new URL("../.dev-db/", import.meta.url).pathname;
}

/** SUPABASE_JWT_SECRET from `env`, else the dev database's own secret; throws when there is neither. */
export function jwtSecret(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  if (env.SUPABASE_JWT_SECRET) return env.SUPABASE_JWT_SECRET;
  const saved = readSecret(`${devDir(env)}${SECRET_FILE}`);
  if (saved) return saved;
  throw new Error(
    `No JWT secret: set SUPABASE_JWT_SECRET, or start the dev server once (deno task dev) to make ${
      devDir(env)
    }${SECRET_FILE}`,
  );
}

/** Which secret the dev server signs with, and whether the database's own was made just now. */
export interface DevSecret {
  secret: string;
  source: "environment" | "database";
  file: string;
  created: boolean;
}

/**
 * The dev server's secret: SUPABASE_JWT_SECRET when set, else the one kept in
 * `dir` (made with the database: 32 random bytes as hex, mode 0600).
 */
export async function devJwtSecret(dir: string, env: Record<string, string | undefined>): Promise<DevSecret> {
  const file = `${dir}${SECRET_FILE}`;
  if (env.SUPABASE_JWT_SECRET) return { secret: env.SUPABASE_JWT_SECRET, source: "environment", file, created: false };
  const saved = readSecret(file);
  if (saved) return { secret: saved, source: "database", file, created: false };
  const secret = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
  await Deno.writeTextFile(file, secret + "\n", { mode: 0o600 });
  await Deno.chmod(file, 0o600); // mode applies only when the file is created
  return { secret, source: "database", file, created: true };
}

function readSecret(file: string): string | null {
  try {
    return Deno.readTextFileSync(file).trim() || null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

/**
 * Signs `claims` (HS256). `expiresIn` in seconds from now (default one hour);
 * `null` leaves `exp` out (such a token is refused by Realtime: tests use it).
 */
export async function mintToken(
  secret: string,
  claims: Record<string, unknown>,
  options: { expiresIn?: number | null } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = options.expiresIn === undefined ? 3600 : options.expiresIn;
  const payload = { iat: now, ...claims, ...(expiresIn === null ? {} : { exp: now + expiresIn }) };
  return await new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(key(secret));
}

/** An access token for a signed-in user, shaped as Supabase Auth issues them (`role: authenticated`). */
export function mintUserToken(
  secret: string,
  userId: string,
  options: { expiresIn?: number | null; email?: string } = {},
): Promise<string> {
  return mintToken(secret, {
    iss: "supabase-demo",
    aud: "authenticated",
    sub: userId,
    role: "authenticated",
    ...(options.email ? { email: options.email } : {}),
  }, options);
}

/** The anon key: with the default secret it is byte for byte the Supabase CLI's local anon key. */
export async function anonKey(secret: string): Promise<string> {
  return await new SignJWT({ iss: "supabase-demo", role: "anon", exp: CLI_ANON_KEY_EXP })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(key(secret));
}

/** The service role key, as `supabase start` prints it for the default secret. */
export async function serviceRoleKey(secret: string): Promise<string> {
  return await new SignJWT({ iss: "supabase-demo", role: "service_role", exp: CLI_ANON_KEY_EXP })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(key(secret));
}

/**
 * Verifies an HS256 token and requires `role` and `exp`, as Supabase Realtime
 * does (RealtimeWeb.ChannelsAuthorization.authorize_conn); throws a {@linkcode TokenError}.
 */
export async function verifyToken(token: string, secret: string): Promise<Claims> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key(secret), { algorithms: ["HS256"] }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) {
      const exp = Number(decodeJwt(token).exp);
      throw new TokenError("expired", `Token has expired ${Math.floor(Date.now() / 1000) - exp} seconds ago`);
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) {
      throw new TokenError("signature", "Failed to validate JWT signature");
    }
    throw new TokenError("malformed", "The token provided is not a valid JWT");
  }
  if (typeof payload.role !== "string" || typeof payload.exp !== "number") {
    throw new TokenError("missing_claims", "Fields `role` and `exp` are required in JWT");
  }
  return payload as Claims;
}
