/**
 * Who may join a Realtime channel, as Supabase Realtime decides it: the
 * token verified (HS256, `role` and `exp` required), and for a private
 * channel the read probe of Realtime.Tenants.Authorization against the
 * project's policies on `realtime.messages`, run on the authenticator's
 * connection as the token's role. Refusals are worded as Supabase's.
 *
 * @module
 */
import postgres from "postgres";
import { type Authenticator, becomeRole } from "./authenticator.ts";
import { type Claims, TokenError, verifyToken } from "./jwt.ts";

/** A join to authorize: the channel's topic without `realtime:`, and what the join said. */
export interface JoinRequest {
  topic: string;
  subTopic: string;
  private: boolean;
  token: string;
  config: { postgres_changes?: unknown[] };
}

/** A refusal of the read probe: `unauthorized` when the policy (or the role) said no. */
export interface ReadRefusal {
  unauthorized: boolean;
  message: string;
}

/** The checks of one stand-in. */
export interface ChannelAuthorizer {
  /** The token's claims when the join is allowed, else Supabase's reason text. */
  authorizeJoin(join: JoinRequest): Promise<{ claims: Claims } | { refusal: string }>;
  /** Why the token may not read `topic` (null: it may). */
  readRefusal(topic: string, claims: Claims): Promise<ReadRefusal | null>;
  /** The claims of a valid token; throws its TokenError. */
  verify(token: string): Promise<Claims>;
}

/** Creates the checks on the authenticator's pool with the project's JWT secret. */
export function createChannelAuthorizer(authenticator: Authenticator, jwtSecret: string): ChannelAuthorizer {
  async function authorizeJoin(join: JoinRequest): Promise<{ claims: Claims } | { refusal: string }> {
    if (!join.topic.startsWith("realtime:")) return { refusal: "unmatched topic" };
    if (join.subTopic === "") return { refusal: "TopicNameRequired: You must provide a topic name" };
    let claims: Claims;
    try {
      claims = await verifyToken(join.token, jwtSecret);
    } catch (error) {
      return { refusal: joinTokenReason(error) };
    }
    if (Array.isArray(join.config.postgres_changes) && join.config.postgres_changes.length > 0) {
      return {
        refusal: "UnknownErrorOnChannel: the Realtime stand-in does not serve postgres_changes (use broadcast)",
      };
    }
    if (!join.private) return { claims };
    const refusal = await readRefusal(join.subTopic, claims);
    if (!refusal) return { claims };
    return { refusal: refusal.unauthorized ? `Unauthorized: ${refusal.message}` : refusal.message };
  }

  /**
   * A policy that says no, or any PostgreSQL error of the probe (a role the authenticator cannot become, say:
   * Realtime's rls_policy_error), is unauthorized; a database out of reach is not.
   */
  async function readRefusal(topic: string, claims: Claims): Promise<ReadRefusal | null> {
    try {
      if (await canRead(authenticator, topic, claims)) return null;
    } catch (error) {
      if (!(error instanceof postgres.PostgresError)) {
        return { unauthorized: false, message: "Realtime was unable to connect to the project database" };
      }
    }
    return { unauthorized: true, message: `You do not have permissions to read from this Channel topic: ${topic}` };
  }

  return { authorizeJoin, readRefusal, verify: (token) => verifyToken(token, jwtSecret) };
}

/**
 * The read probe: may this token's role read the topic's broadcasts? The probe row is inserted as service_role
 * (Realtime inserts it as its own database user), then the select runs as the token's role; all of it rolled back.
 */
async function canRead(authenticator: Authenticator, topic: string, claims: Claims): Promise<boolean> {
  const id = crypto.randomUUID();
  let allowed = false;
  await authenticator.begin(async (tx) => {
    await becomeRole(tx, "service_role");
    await tx`insert into realtime.messages (id, topic, extension) values (${id}, ${topic}, 'broadcast')`;
    await becomeRole(tx, claims.role, {
      "realtime.topic": topic,
      "request.jwt.claims": JSON.stringify(claims),
      "request.jwt.claim.sub": claims.sub ?? "",
      "request.jwt.claim.role": claims.role,
      "request.headers": "{}",
    });
    allowed = (await tx`select id from realtime.messages where id = ${id}`).length === 1;
    throw new Rollback();
  }).catch((error) => {
    if (!(error instanceof Rollback)) throw error;
  });
  return allowed;
}

class Rollback extends Error {}

/** RealtimeWeb.UserSocket.handle_error's text for a refused socket token. */
export function connectErrorText(error: unknown): string {
  if (!(error instanceof TokenError)) return "The token provided is not a valid JWT";
  return error.reason === "expired" ? "Token has expired" : error.message;
}

/** The join reason Supabase gives for a refused token (log_error / maybe_log_warning codes). */
function joinTokenReason(error: unknown): string {
  if (!(error instanceof TokenError)) return "UnknownErrorOnChannel: Unknown Error on Channel";
  switch (error.reason) {
    case "expired":
    case "missing_claims":
      return `InvalidJWTToken: ${error.message}`;
    case "signature":
      return `JwtSignatureError: ${error.message}`;
    default:
      return `MalformedJWT: ${error.message}`;
  }
}
