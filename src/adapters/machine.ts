/**
 * Who this host is, as written into disk metadata and compared by
 * own-hostname / own-machine-id.
 *
 * Exports: `HostIdentity`, `hostIdentity()`.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';

export interface HostIdentity {
  hostname: string;
  /** /etc/machine-id, "" when the host has none. */
  machineId: string;
}

export async function hostIdentity(machineIdFile = '/etc/machine-id'): Promise<HostIdentity> {
  let machineId = '';
  try {
    machineId = (await readFile(machineIdFile, 'utf8')).trim();
  } catch {
    // containers and minimal systems may lack it; metadata then records ""
  }
  return { hostname: hostname(), machineId };
}
