/**
 * Proof that a create, rename or removal went through when its reply was
 * lost.
 *
 * Each is a multi that also rewrites its directory's metadata document at
 * the version read. When the connection drops before the reply, the mount
 * sends it again, and a failure (the node exists now, or is gone, or the
 * document has moved on) only says the first send worked if ZooKeeper shows
 * what it wrote. Once another host has changed the names or the document
 * since, it does not, and the nodes alone cannot say who did what: a node
 * made by another host under the same name looks the same. Answered EEXIST,
 * `cp` and lock files made with O_EXCL or mkdir took a file this host had
 * made for someone else's; a rename over a name another host replaced right
 * after failed with ENOENT though it had been done; and a removal found
 * "not done" was done again, removing the file another host had put under
 * the name meanwhile.
 *
 * So each such write adds a token of its own to the document it writes,
 * under the top-level key `cn`, which every zkfs keeps as it is when it
 * rewrites the document (unknown keys are preserved). The token in the
 * document means this write's multi was applied, and its absence that it
 * was not, as NFS's exclusive create keeps a verifier with the file. A token
 * is only needed until its write's reply arrives: the mount drops its own
 * settled tokens when it next writes the document, and anyone's once ten
 * minutes old, keeping the newest 64 at most, so a burst of writes from one
 * host leaves one or two.
 */
import type { DirMeta } from './attrs.js';
import { parseMeta } from './attrs.js';
import type { ShowsProof } from './zk-ops.js';

export const PROOF_KEY = 'cn';
/** Long past any resend: the reconnect wait, then one request. */
const KEEP_MS = 10 * 60_000;
const KEEP_MAX = 64;

/** When `proof` was made (ms, its maker's clock); NaN for what is not a token. */
function madeAt(proof: string): number {
  const dash = proof.indexOf('-');
  return dash > 0 ? Number.parseInt(proof.slice(0, dash), 36) : Number.NaN;
}

function proofsIn(meta: DirMeta): string[] {
  const value = meta.extra[PROOF_KEY];
  return Array.isArray(value) ? value.filter((p): p is string => typeof p === 'string') : [];
}

/** Whether the document `data` (as read now) holds `proof`. */
export function showsProof(data: Buffer, proof: string): boolean {
  return proofsIn(parseMeta(data)).includes(proof);
}

/** One write's token, as its ops use it. */
export interface WriteToken {
  /** The document `meta` as the write leaves it: with the token (see WriteProofs.withProof). */
  mark(meta: DirMeta): DirMeta;
  /** Whether a document read back holds the token (ZkOp `proof`). */
  shows: ShowsProof;
}

/** The tokens of one mount's writes: `${time}-${mount}${serial}`, base 36. */
export class WriteProofs {
  /** 40 random bits naming this mount's tokens: its own are told from others' by it. */
  private readonly mine: string;
  private serial = 0;
  /** Tokens of writes whose reply has not come yet. */
  private readonly pending = new Set<string>();

  constructor(random: () => number = Math.random) {
    this.mine = Math.floor(random() * 2 ** 40)
      .toString(36)
      .padStart(8, '0');
  }

  /** A token for a write about to be sent. */
  issue(now: number = Date.now()): string {
    const proof = `${now.toString(36)}-${this.mine}${(this.serial++).toString(36)}`;
    this.pending.add(proof);
    return proof;
  }

  /** The write of `proof` has its answer, whatever it was: the token is not needed any more. */
  settle(proof: string): void {
    this.pending.delete(proof);
  }

  /** Runs `work`, one write however many times it is built and sent, with a token of its own, settled once it is done. */
  async during<T>(work: (token: WriteToken) => Promise<T>): Promise<T> {
    const proof = this.issue();
    try {
      return await work({
        mark: (meta) => this.withProof(meta, proof),
        shows: (now) => showsProof(now, proof),
      });
    } finally {
      this.settle(proof);
    }
  }

  /** `meta` with `proof` added, less this mount's settled tokens, tokens past KEEP_MS and beyond KEEP_MAX. */
  withProof(meta: DirMeta, proof: string, now: number = Date.now()): DirMeta {
    const kept = proofsIn(meta).filter(
      (p) => Math.abs(now - madeAt(p)) < KEEP_MS && (!this.isMine(p) || this.pending.has(p)) && p !== proof,
    );
    kept.push(proof);
    return { ...meta, extra: { ...meta.extra, [PROOF_KEY]: kept.slice(-KEEP_MAX) } };
  }

  private isMine(proof: string): boolean {
    return proof.startsWith(this.mine, proof.indexOf('-') + 1);
  }
}
