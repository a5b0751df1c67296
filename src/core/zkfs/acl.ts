/**
 * Whether a znode's ACL lets this session write, decided before any data is
 * buffered, so a tool opening a read-only node for writing gets "Permission
 * denied" at open — shells ignore errors at close, where ZooKeeper itself
 * would refuse. Only the schemes whose identities the client knows are
 * judged (world:anyone and its own digest); an ACL with any other scheme
 * (ip, sasl, x509) is left for the server to decide.
 */
import { createHash } from 'node:crypto';
import type { AclEntry } from './zk-ops.js';

export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_CREATE = 4;
export const PERM_DELETE = 8;
export const PERM_ADMIN = 16;

export interface AclIdentity {
  scheme: string;
  id: string;
}

/** The identities a session holds: world:anyone, plus digest user:base64(sha1(user:password)). */
export function sessionIdentities(auth?: { user: string; password: string }): AclIdentity[] {
  const ids: AclIdentity[] = [{ scheme: 'world', id: 'anyone' }];
  if (auth) {
    const hash = createHash('sha1').update(`${auth.user}:${auth.password}`).digest('base64');
    ids.push({ scheme: 'digest', id: `${auth.user}:${hash}` });
  }
  return ids;
}

const JUDGED = new Set(['world', 'digest']);

/** 'yes' or 'no' when the ACL decides for these identities, 'unknown' when the server must. */
export function aclAllows(
  acl: readonly AclEntry[],
  identities: readonly AclIdentity[],
  perm: number,
): 'yes' | 'no' | 'unknown' {
  let judged = true;
  for (const entry of acl) {
    if (!JUDGED.has(entry.scheme)) {
      judged = false;
      continue;
    }
    const matches = identities.some((i) => i.scheme === entry.scheme && i.id === entry.id);
    if (matches && (entry.perms & perm) === perm) return 'yes';
  }
  return judged ? 'no' : 'unknown';
}
