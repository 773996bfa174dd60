import { UserError } from "../log";

/*
 * What a service's settings may say, checked the same way by the stack's
 * settings (./settings) and by the actions (lib/ha): names, volumes, sync
 * intervals and the images edge-ha ships.
 */

/** The services edge-ha ships, by name: port inside the container. */
export const demoServices = { counter: { port: 8080 }, web: { port: 80 } } as const;
export type DemoService = keyof typeof demoServices;

export function isDemoService(name: string): name is DemoService {
  return Object.hasOwn(demoServices, name);
}

/** A named volume and where the container mounts it. */
export interface Volume {
  name: string;
  target: string;
}

/** A volume written as NAME:/path/in/container, or undefined when the text is not one. */
export function parseVolume(text: string): Volume | undefined {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(\/.*)$/.exec(text);
  return m ? { name: m[1], target: m[2] } : undefined;
}

/** Whether `name` can name a service (and its container). */
export function isServiceName(name: string): boolean {
  return /^[a-z][a-z0-9-]{0,40}$/.test(name);
}

/** Throws a UserError unless `name` can name a service (and its container). */
export function checkServiceName(name: string): void {
  if (!isServiceName(name)) throw new UserError(`service name: expected lower-case letters, digits and dashes, found "${name}"`);
}

/** Whether `seconds` is a sync interval edge-ha accepts (from 0.5 to 3600). */
export function isSyncInterval(seconds: number): boolean {
  return seconds >= 0.5 && seconds <= 3600;
}

/** Starts (or restarts with new settings) the sync of a service (as `primary` runs it, see specOf) from `primary` to `standby`. */
