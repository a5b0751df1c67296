/**
 * node-zookeeper-client 1.x knows the error codes of ZooKeeper 3.4. A newer
 * server may answer a request with another (SESSION_MOVED while a session
 * moves between servers, QUOTA_EXCEEDED, THROTTLED_OP, …), and the library
 * then throws "Unknown code" from inside its socket handler: an uncaught
 * exception that ends the process (a zkfs daemon, leaving its mount dead).
 * Its error factory is wrapped once, here, so that such an answer fails only
 * the request it belongs to: SESSION_MOVED as a connection loss (the server
 * did not apply the request; the session retries or confirms it), anything
 * else as a system error naming the code.
 */
import zookeeper from 'node-zookeeper-client';

/** Server error codes newer than the library (org.apache.zookeeper.KeeperException.Code). */
export const NEWER_ERROR_CODES: ReadonlyMap<number, string> = new Map([
  [-13, 'NEW_CONFIG_NO_QUORUM'],
  [-14, 'RECONFIG_IN_PROGRESS'],
  [-15, 'EPHEMERAL_ON_LOCAL_SESSION'],
  [-118, 'SESSION_MOVED'],
  [-119, 'NOT_READONLY'],
  [-120, 'EPHEMERAL_ON_LOCAL_SESSION'],
  [-121, 'NO_WATCHER'],
  [-122, 'REQUEST_TIMEOUT'],
  [-123, 'RECONFIG_DISABLED'],
  [-124, 'SESSION_CLOSED_REQUIRE_SASL_AUTH'],
  [-125, 'QUOTA_EXCEEDED'],
  [-127, 'THROTTLED_OP'],
]);

type Factory = ((code: number, path?: string) => Error) & { zkfsWrapped?: true };
interface ExceptionModule {
  create: Factory;
  CONNECTION_LOSS: number;
  SYSTEM_ERROR: number;
}

/** Wraps the library's factory (idempotent). */
export function tolerateNewerErrorCodes(): void {
  const exceptions = zookeeper.Exception as unknown as ExceptionModule;
  const original = exceptions.create;
  if (original.zkfsWrapped) return;
  const wrapped: Factory = (code, path) => {
    try {
      return original(code, path);
    } catch {
      const name = NEWER_ERROR_CODES.get(code) ?? 'an unknown error';
      const stand = name === 'SESSION_MOVED' ? exceptions.CONNECTION_LOSS : exceptions.SYSTEM_ERROR;
      const error = original(stand, path);
      error.message = `${error.message} (the server answered ${name}, code ${code})`;
      return error;
    }
  };
  wrapped.zkfsWrapped = true;
  exceptions.create = wrapped;
}
