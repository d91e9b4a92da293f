// Portal addresses: "host:port", "[v6]:port", "host" (port 3260), bare IPv6 ("::1").
import { isIP, isIPv6 } from 'node:net';
import type { Portal } from './model';

export const ISCSI_PORT = 3260;

const HOSTNAME_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** Parse a portal; returns the Portal or an error message naming the value. */
export function parsePortal(text: string): Portal | { error: string } {
  const q = JSON.stringify(text);
  const s = text.trim();
  if (s === '') return { error: 'a portal cannot be empty (use e.g. "0.0.0.0:3260")' };
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
    if (!m) return { error: `${q} is not a portal: expected "[IPv6]:port"` };
    host = m[1]!;
    portText = m[2];
    if (!isIPv6(host)) return { error: `${q}: "${host}" is not an IPv6 address` };
  } else if (isIPv6(s)) {
    host = s; // bare IPv6 without port
  } else {
    const i = s.lastIndexOf(':');
    if (i >= 0) {
      host = s.slice(0, i);
      portText = s.slice(i + 1);
      if (host.includes(':')) {
        return { error: `${q}: write IPv6 addresses in brackets, e.g. "[::1]:3260"` };
      }
    } else {
      host = s;
    }
    if (!isIP(host) && !HOSTNAME_RE.test(host)) {
      return { error: `${q}: "${host}" is neither an IP address nor a host name` };
    }
    if (/^[\d.]+$/.test(host) && !isIP(host)) {
      return { error: `${q}: "${host}" is not a valid IPv4 address` };
    }
  }
  let port = ISCSI_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      return { error: `${q}: "${portText}" is not a port number (0..65535)` };
    }
    port = Number(portText);
  }
  return { host, port };
}

/** "10.0.0.1:3260", "[::1]:3260". */
export function formatPortal(p: { host: string; port: number }): string {
  return `${isIPv6(p.host) ? `[${p.host}]` : p.host}:${p.port}`;
}

/** True for 0.0.0.0 and :: (listen on every address). */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:0';
}
