/**
 * The Docker volume plugin protocol on the wire: endpoint paths and the exact
 * JSON key names the engine sends and expects (shared/reference.md §2).
 */

/** Content type of every reply; the engine sends it as Accept. */
export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1.2+json';

export const ACTIVATE_PATH = '/Plugin.Activate';
export const CREATE_PATH = '/VolumeDriver.Create';
export const REMOVE_PATH = '/VolumeDriver.Remove';
export const MOUNT_PATH = '/VolumeDriver.Mount';
export const PATH_PATH = '/VolumeDriver.Path';
export const UNMOUNT_PATH = '/VolumeDriver.Unmount';
export const GET_PATH = '/VolumeDriver.Get';
export const LIST_PATH = '/VolumeDriver.List';
export const CAPABILITIES_PATH = '/VolumeDriver.Capabilities';

/** What Activate announces. */
export const VOLUME_DRIVER_INTERFACE = 'VolumeDriver';

export interface ActivateResponse {
  Implements: string[];
}

export interface CreateRequest {
  Name: string;
  Opts?: Record<string, string> | null;
}

export interface NameRequest {
  Name: string;
}

export interface MountRequest {
  Name: string;
  ID: string;
}

export interface MountResponse {
  Mountpoint: string;
  Err: string;
}

export interface WireVolume {
  Name: string;
  Mountpoint?: string;
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

export interface GetResponse {
  Volume: WireVolume;
  Err: string;
}

export interface ListResponse {
  Volumes: WireVolume[];
  Err: string;
}

export interface CapabilitiesResponse {
  Capabilities: { Scope: 'local' | 'global' };
}

/** Every failure, with a non-200 status. */
export interface ErrorResponse {
  Err: string;
}
