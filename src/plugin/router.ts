/**
 * One path for every request: look the endpoint up in a table, decode and
 * check the JSON body, call the driver, encode the reply. Every failure, from
 * a malformed body to a driver error or a bug, becomes `{"Err": "..."}` with a
 * non-200 status; `handle` never throws. Requests naming a volume are
 * serialized per volume.
 */
import type { Logger } from '../adapters/logger.js';
import { errorMessage, OperationError, UsageError } from '../core/errors.js';
import { NoSuchVolumeError, validateMountId, validateVolumeName } from '../core/plugin-state.js';
import { REDACTED, redact } from '../core/redact.js';
import { KeyedQueue } from './keyed-queue.js';
import {
  ACTIVATE_PATH,
  CAPABILITIES_PATH,
  CREATE_PATH,
  GET_PATH,
  LIST_PATH,
  MOUNT_PATH,
  PATH_PATH,
  REMOVE_PATH,
  UNMOUNT_PATH,
  VOLUME_DRIVER_INTERFACE,
} from './protocol.js';
import type { VolumeDriver } from './volume-driver.js';

export interface PluginRequest {
  method: string;
  /** Request target; a query string is ignored. */
  path: string;
  body: Buffer | string;
  /** Aborted when the engine stops waiting for the reply (it closed the connection). */
  signal?: AbortSignal;
}

export interface PluginReply {
  status: number;
  /** JSON-serialisable reply body. */
  body: object;
}

/** A request the router refuses before calling the driver; carries its HTTP status. */
export class RequestError extends UsageError {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

type Body = Record<string, unknown>;

interface Route {
  /** True when the body must carry a valid `Name`; such requests are serialized per volume. */
  named: boolean;
  run(driver: VolumeDriver, body: Body, name: string, gone: AbortSignal): Promise<object>;
}

function decodeOptions(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new UsageError('Opts must be an object');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new UsageError(`option ${JSON.stringify(key)} must be a string`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays an (unknown) option.
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

const ROUTES: Readonly<Record<string, Route>> = {
  [ACTIVATE_PATH]: { named: false, run: async () => ({ Implements: [VOLUME_DRIVER_INTERFACE] }) },
  [CAPABILITIES_PATH]: {
    named: false,
    run: async (driver) => ({ Capabilities: { Scope: driver.capabilities().scope } }),
  },
  [CREATE_PATH]: {
    named: true,
    run: async (driver, body, name) => {
      await driver.create(name, decodeOptions(body.Opts));
      return { Err: '' };
    },
  },
  [REMOVE_PATH]: {
    named: true,
    run: async (driver, _body, name) => {
      await driver.remove(name);
      return { Err: '' };
    },
  },
  [MOUNT_PATH]: {
    named: true,
    run: async (driver, body, name, gone) => {
      const id = validateMountId(body.ID);
      const mountpoint = await driver.mount(name, id);
      if (gone.aborted) {
        // The engine gives a Mount two minutes, then fails the container and never Unmounts this
        // ID: a reference kept now would hold the volume mounted for nobody.
        await driver.unmount(name, id);
        throw new OperationError(
          `the engine stopped waiting before the volume was mounted; mount ${id} undone`,
        );
      }
      return { Mountpoint: mountpoint, Err: '' };
    },
  },
  [PATH_PATH]: {
    named: true,
    run: async (driver, _body, name) => ({ Mountpoint: (await driver.path(name)) ?? '', Err: '' }),
  },
  [UNMOUNT_PATH]: {
    named: true,
    run: async (driver, body, name) => {
      await driver.unmount(name, validateMountId(body.ID));
      return { Err: '' };
    },
  },
  [GET_PATH]: {
    named: true,
    run: async (driver, _body, name) => {
      const v = await driver.get(name);
      const volume: Record<string, unknown> = { Name: v.name };
      if (v.mountpoint) volume.Mountpoint = v.mountpoint;
      volume.CreatedAt = v.createdAt;
      volume.Status = v.status;
      return { Volume: volume, Err: '' };
    },
  },
  [LIST_PATH]: {
    named: false,
    run: async (driver) => ({
      Volumes: (await driver.list()).map((v) =>
        v.mountpoint ? { Name: v.name, Mountpoint: v.mountpoint } : { Name: v.name },
      ),
      Err: '',
    }),
  },
};

function statusOf(error: unknown): number {
  if (error instanceof RequestError) return error.status;
  if (error instanceof NoSuchVolumeError) return 404;
  if (error instanceof UsageError) return 400;
  return 500;
}

function isBlank(raw: Buffer | string): boolean {
  return (typeof raw === 'string' ? raw : raw.toString('utf8')).trim() === '';
}

function decodeBody(raw: Buffer | string): Body {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  // Activate (and sometimes List) arrives with an empty body.
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The parser's message quotes the text around the fault, which may be a passphrase.
    throw new RequestError(
      400,
      `malformed JSON in request body (${Buffer.byteLength(text)} bytes, not shown)`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestError(400, 'request body must be a JSON object');
  }
  return value as Body;
}

export interface RouterOptions {
  driver: VolumeDriver;
  log: Logger;
}

export class Router {
  private readonly driver: VolumeDriver;
  private readonly log: Logger;
  private readonly queue = new KeyedQueue();

  constructor(options: RouterOptions) {
    this.driver = options.driver;
    this.log = options.log;
  }

  /** Runs `task` on volume `name` between its requests, never during one. */
  exclusive<T>(name: string, task: () => Promise<T>): Promise<T> {
    return this.queue.run(name, task);
  }

  /** Answers one request; never throws. */
  async handle(request: PluginRequest): Promise<PluginReply> {
    const started = process.hrtime.bigint();
    const path = request.path.split('?')[0] ?? '';
    const endpoint = path.slice(1, 200) || '/';
    let volume: string | undefined;
    let reply: PluginReply;
    let requestSecrets: readonly string[] = [];
    try {
      const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
      if (!route) throw new RequestError(404, `unknown endpoint ${JSON.stringify(path.slice(0, 200))}`);
      if (request.method !== 'POST') {
        throw new RequestError(405, `method ${request.method} not allowed on ${path} (use POST)`);
      }
      const body = decodeBody(request.body);
      if (route.named && isBlank(request.body)) {
        // dockerd retries a request whose connection broke without its body (moby/moby#35459).
        throw new RequestError(
          400,
          `${endpoint} arrived with an empty body, as the engine resends a request a plugin restart cut off; run the command again`,
        );
      }
      requestSecrets = this.hideSecrets(body);
      if (this.log.enabled('debug')) this.log.debug(`${endpoint} request ${this.describe(body)}`);
      const gone = request.signal ?? new AbortController().signal;
      if (route.named) {
        const name = validateVolumeName(body.Name, (n) => redact(n, requestSecrets));
        volume = this.driver.displayName?.(name) ?? name;
        reply = {
          status: 200,
          body: await this.queue.run(name, () => route.run(this.driver, body, name, gone)),
        };
      } else {
        reply = { status: 200, body: await route.run(this.driver, body, '', gone) };
      }
    } catch (error) {
      const status = statusOf(error);
      const message = redact(
        error instanceof OperationError ? error.message : `internal error: ${errorMessage(error)}`,
        [...this.driver.secrets(), ...requestSecrets],
      );
      if (!(error instanceof OperationError)) {
        this.log.error(`${endpoint}: ${message}`);
        if (error instanceof Error && error.stack) this.log.debug(error.stack);
      } else if (error.detail) {
        this.log.debug(`${endpoint}: ${error.detail}`);
      }
      reply = { status, body: { Err: message } };
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const outcome =
      reply.status === 200 ? 'ok' : `failed (${reply.status}): ${(reply.body as { Err: string }).Err}`;
    this.log.info(`${endpoint}${volume ? ` volume=${volume}` : ''} ${outcome} ${ms.toFixed(1)} ms`);
    if (this.log.enabled('debug')) this.log.debug(`${endpoint} reply ${JSON.stringify(reply.body)}`);
    return reply;
  }

  /**
   * Registers the request's secrets (option values, and any the driver finds
   * in the name) with the logger before anything about the request is
   * logged; returns them so that an error reply can hide them too.
   */
  private hideSecrets(body: Body): string[] {
    const found: string[] = [];
    const opts =
      typeof body.Opts === 'object' && body.Opts !== null ? (body.Opts as Record<string, unknown>) : {};
    for (const key of this.driver.secretOptions) {
      const value = opts[key];
      if (typeof value === 'string') found.push(value);
    }
    if (typeof body.Name === 'string' && this.driver.secretsIn) {
      const strings = Object.entries(opts).filter((e): e is [string, string] => typeof e[1] === 'string');
      found.push(...this.driver.secretsIn(body.Name, Object.fromEntries(strings)));
    }
    for (const secret of found) this.log.addSecret(secret);
    return found;
  }

  private describe(body: Body): string {
    const opts = body.Opts;
    if (typeof opts !== 'object' || opts === null) return JSON.stringify(body);
    // Only values known to be no secret: a key the driver refuses may be a secret option misspelt
    // ("Auth", "pass phrase", "password"), its value the secret.
    const plain = this.driver.plainOptions ?? [];
    const masked = Object.fromEntries(
      Object.entries(opts as Record<string, unknown>).map(([key, value]) => [
        key,
        plain.includes(key) ? value : REDACTED,
      ]),
    );
    return JSON.stringify({ ...body, Opts: masked });
  }
}
