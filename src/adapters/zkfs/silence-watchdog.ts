/**
 * Noticing a ZooKeeper server that stopped answering without closing the
 * connection (hung, or cut off by the network): node-zookeeper-client sends
 * pings on an idle connection but never checks that replies come back, so
 * it would wait forever. As ZooKeeper's Java client does, a connection that
 * has been silent for two thirds of the session timeout is dropped, and the
 * library moves to the next server. Silence caused by this process itself
 * being paused or starved (a stalled timer) is not held against the server.
 */
import type { ZkClient } from '../zookeeper.js';
import { dropConnection, watchTraffic } from './zk-wire.js';

export interface WatchdogSubject {
  /** The client in use and whether it counts as connected. */
  current(): { client: ZkClient; connected: boolean };
  sessionTimeoutMs(): number;
  onSilent(silentMs: number): void;
}

export class SilenceWatchdog {
  private lastTraffic = Date.now();
  private lastTick = Date.now();
  private readonly sockets = new WeakSet<object>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly subject: WatchdogSubject) {
    this.timer = setInterval(() => this.check(), 1000);
    this.timer.unref();
  }

  /** Something arrived (or a connection was just made): the server is alive. */
  heard(client?: ZkClient): void {
    this.lastTraffic = Date.now();
    if (client) watchTraffic(client.library, this.sockets, () => this.heard());
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = Date.now();
    const stalled = now - this.lastTick > 3000;
    this.lastTick = now;
    if (stalled) {
      this.lastTraffic = now;
      return;
    }
    const { client, connected } = this.subject.current();
    if (!connected) return;
    const silent = now - this.lastTraffic;
    if (silent > (this.subject.sessionTimeoutMs() * 2) / 3 + 1000) {
      this.subject.onSilent(silent);
      this.lastTraffic = now;
      dropConnection(client.library);
    }
  }
}
