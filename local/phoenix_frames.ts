/**
 * The frames of realtime-js 2.119's Phoenix protocol (`vsn=2.0.0`) that the
 * Realtime stand-in sends and reads: JSON array frames
 * `[join_ref, ref, topic, event, payload]`, and binary user-broadcast frames.
 *
 * @module
 */
import type { DatabaseBroadcast } from "./realtime_feed.ts";

/** A JSON frame: `[join_ref, ref, topic, event, payload]`. */
export type Frame = [string | null, string | null, string, string, Record<string, unknown>];

/** A client's socket, and whether it is closing (what it sends then is ignored). */
export interface FrameSocket {
  socket: WebSocket;
  closing: boolean;
}

const encoder = new TextEncoder();

/** A text frame as a Frame, or undefined when it is not one. */
export function parseFrame(data: string): Frame | undefined {
  try {
    const frame = JSON.parse(data);
    return Array.isArray(frame) && frame.length === 5 && typeof frame[2] === "string" ? frame as Frame : undefined;
  } catch {
    return undefined;
  }
}

/** A `phx_reply` with its status and response. */
export function reply(
  to: FrameSocket,
  joinRef: string | null,
  ref: string | null,
  topic: string,
  status: string,
  response: Record<string, unknown>,
): void {
  push(to, joinRef, ref, topic, "phx_reply", { status, response });
}

/** Any JSON frame. */
export function push(
  to: FrameSocket,
  joinRef: string | null,
  ref: string | null,
  topic: string,
  event: string,
  payload: Record<string, unknown>,
): void {
  send(to, JSON.stringify([joinRef, ref, topic, event, payload]));
}

/** Sends when the socket is open. */
export function send(to: FrameSocket, data: string | Uint8Array): void {
  if (to.socket.readyState === WebSocket.OPEN) to.socket.send(data);
}

/**
 * Ignores the socket from now on and closes it a second later: Deno's close()
 * drops the frames still queued for sending (checked with Deno 2), and
 * bufferedAmount does not count them, so the refusal is given time to arrive.
 */
export function closeSoon(to: FrameSocket, code: number, reason: string): void {
  to.closing = true;
  setTimeout(() => to.socket.close(code, reason), 1000);
}

/** A frame's size in bytes (a string's UTF-8 length, counted only when it may be over `limit`). */
export function frameSize(data: unknown, limit: number): number {
  if (typeof data === "string") return data.length * 3 <= limit ? data.length : encoder.encode(data).length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return data instanceof Blob ? data.size : 0;
}

/**
 * RealtimeWeb.Socket.V2Serializer's user broadcast (kind 4): sizes of topic,
 * event and metadata, the payload encoding (1: JSON), then the bytes.
 */
export function userBroadcastFrame(topic: string, message: DatabaseBroadcast): Uint8Array {
  const parts = [topic, message.event, JSON.stringify({ id: message.id })].map((s) => encoder.encode(s));
  const payload = encoder.encode(message.payload);
  if (parts.some((p) => p.length > 255)) throw new Error(`Cannot broadcast on ${topic}: topic or event too long`);
  const header = [4, parts[0]!.length, parts[1]!.length, parts[2]!.length, 1];
  const frame = new Uint8Array(header.length + parts.reduce((n, p) => n + p.length, 0) + payload.length);
  frame.set(header, 0);
  let offset = header.length;
  for (const part of [...parts, payload]) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}
