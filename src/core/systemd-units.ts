/**
 * systemd units for a plugin server: a socket unit ordered before
 * docker.service, so the engine never finds the socket missing at boot and no
 * request is lost while the server starts (it serves on the fd systemd hands
 * over), and the service it activates.
 */

export interface SystemdUnitOptions {
  /** Plugin name: socket basename and `-d NAME`. */
  name: string;
  /** Absolute path of the CLI binary, e.g. /usr/bin/zkfsctl. */
  execPath: string;
  /** serve-plugin arguments after the binary (global options first). */
  args: readonly string[];
  socket: string;
  /** man page for Documentation=, e.g. zkfsctl(1). */
  manPage: string;
  /** Environment= of the service: variables the server reads that were set when the units were made. */
  environment?: Readonly<Record<string, string>>;
}

export interface UnitFile {
  fileName: string;
  text: string;
}

/** Base name of both units, e.g. volkit-zookeeper-plugin. */
export function unitBaseName(name: string): string {
  return `volkit-${name}-plugin`;
}

/** Quotes one ExecStart word the way systemd reads it; `%` is a specifier prefix and is doubled. */
export function systemdQuote(word: string): string {
  const escaped = word.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_./:=@+,%-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function systemdUnits(options: SystemdUnitOptions): UnitFile[] {
  const base = unitBaseName(options.name);
  const execStart = [options.execPath, ...options.args].map(systemdQuote).join(' ');
  const socket = [
    '[Unit]',
    `Description=Socket of the "${options.name}" Docker volume plugin (volkit)`,
    `Documentation=man:${options.manPage}`,
    'Before=docker.service',
    '',
    '[Socket]',
    `ListenStream=${options.socket}`,
    'SocketMode=0660',
    'SocketUser=root',
    'SocketGroup=root',
    '',
    '[Install]',
    'WantedBy=sockets.target',
    '',
  ].join('\n');
  const service = [
    '[Unit]',
    `Description="${options.name}" Docker volume plugin (volkit)`,
    `Documentation=man:${options.manPage}`,
    `Requires=${base}.socket`,
    `After=${base}.socket network-online.target`,
    'Wants=network-online.target',
    'Before=docker.service',
    '',
    '[Service]',
    'Type=simple',
    ...Object.entries(options.environment ?? {}).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`),
    `ExecStart=${execStart}`,
    // Mounts (and their FUSE daemons) belong to the containers using them: a
    // restart of the plugin must not take them down; it reconciles on start.
    'KillMode=process',
    'Restart=on-failure',
    'RestartSec=1',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    `Also=${base}.socket`,
    '',
  ].join('\n');
  return [
    { fileName: `${base}.socket`, text: socket },
    { fileName: `${base}.service`, text: service },
  ];
}
