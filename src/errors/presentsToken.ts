import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether a request presents `token`, as `Authorization: Bearer <token>` or (for a page opened from a
 * link) `?token=`. Compared in constant time.
 */
export function presentsToken(request: Request, token: string): boolean {
  const authorization = request.headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization)?.[1];
  const candidate = bearer ?? new URL(request.url).searchParams.get("token") ?? "";
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(candidate), digest(token));
}
