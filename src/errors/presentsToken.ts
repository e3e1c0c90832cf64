import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether a request presents `token`, as `Authorization: Bearer <token>` or (for a page opened from a
 * link, unless `inQuery` is false) `?token=`. Compared in constant time; an empty token matches nothing.
 */
export function presentsToken(
  request: Request,
  token: string,
  { inQuery = true }: { inQuery?: boolean } = {},
): boolean {
  // No token is never presented: an empty one would open the door to every request.
  if (typeof token !== "string" || token.length === 0) return false;
  const authorization = request.headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization)?.[1];
  const candidate = bearer ?? (inQuery ? new URL(request.url).searchParams.get("token") : null) ?? "";
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(candidate), digest(token));
}
