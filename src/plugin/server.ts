/**
 * The HTTP side of a plugin: reads each request body up to a size limit,
 * hands it to the router and writes the reply with the plugin media type.
 * Garbage on the socket (bad HTTP, huge bodies) gets an `{"Err"}` reply and
 * never takes the server down.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../adapters/logger.js';
import { type BoundListener, type ListenOptions, listenPlugin } from '../adapters/plugin-listener.js';
import { PLUGIN_MEDIA_TYPE } from './protocol.js';
import type { PluginReply, Router } from './router.js';

/** Engine requests are a few hundred bytes; anything near this is not from an engine. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

export interface PluginServerOptions {
  router: Router;
  log: Logger;
  listen: ListenOptions;
  maxBodyBytes?: number;
}

export interface PluginServer {
  /** Where it listens: a socket path or "fd 3". */
  address: string;
  kind: BoundListener['kind'];
  /** Stops accepting, lets requests in flight finish, closes every connection. */
  close(): Promise<void>;
}

function encode(body: object): string {
  return `${JSON.stringify(body)}\n`;
}

function send(res: ServerResponse, reply: PluginReply, close = false): void {
  const text = encode(reply.body);
  const headers: Record<string, string | number> = {
    'Content-Type': PLUGIN_MEDIA_TYPE,
    'Content-Length': Buffer.byteLength(text),
  };
  if (close) headers.Connection = 'close';
  res.writeHead(reply.status, headers);
  res.end(text);
}

/** Collects the body; resolves undefined when it grows past `limit`. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return resolve(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

export async function startPluginServer(options: PluginServerOptions): Promise<PluginServer> {
  const { router, log } = options;
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const inFlight = new Set<Promise<void>>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, limit);
    if (body === undefined) {
      log.info(`${req.url ?? ''} refused: body larger than ${limit} bytes`);
      send(res, { status: 413, body: { Err: `request body larger than ${limit} bytes` } }, true);
      return;
    }
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    send(
      res,
      await router.handle({ method: req.method ?? '', path: req.url ?? '', body, signal: gone.signal }),
    );
  };

  // No Host check: a unix socket has no virtual hosts, and Node would answer a bare 400 without {"Err"}.
  const http = createServer(
    { keepAliveTimeout: 30_000, requestTimeout: 300_000, requireHostHeader: false },
    (req, res) => {
      const task = handle(req, res).catch((error: unknown) => {
        // Only a broken connection gets here; the router itself never throws.
        log.debug(`connection error: ${error instanceof Error ? error.message : String(error)}`);
        if (!res.headersSent) send(res, { status: 400, body: { Err: 'could not read the request' } }, true);
        else res.destroy();
      });
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    },
  );
  http.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    log.debug(`malformed HTTP from a client: ${error.code ?? error.message}`);
    if (!socket.writable || socket.destroyed) {
      socket.destroy();
      return;
    }
    const text = encode({ Err: `malformed HTTP request (${error.code ?? 'parse error'})` });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: ${PLUGIN_MEDIA_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  });

  const bound = await listenPlugin(http, options.listen);
  log.info(`serving on ${bound.address}`);
  return {
    address: bound.address,
    kind: bound.kind,
    close: async () => {
      const closing = bound.close();
      http.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      http.closeAllConnections();
      await closing;
    },
  };
}
