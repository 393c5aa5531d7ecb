import { timingSafeEqual } from 'node:crypto';

/**
 * The check of the admin credential, shared by AdminService (gRPC metadata) and the web console
 * (HTTP header): `authorization: Bearer <ADMIN_TOKEN>`, compared in constant time so that the
 * time an answer takes says nothing of how much of a guess was right.
 */
export function adminTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = Buffer.from(`Bearer ${token}`);
  return (authorization) => {
    const actual = Buffer.from(authorization ?? '');
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  };
}
