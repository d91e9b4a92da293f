// RBD image names as the config and the CLI write them. Light on imports: the config checker
// uses it without loading librbd.

/** Parse "POOL/IMAGE" (or "rbd:POOL/IMAGE", as a volume's path shows it). */
export function parseRbdSpec(spec: string): { pool: string; image: string } | { error: string } {
  const m = /^(?:rbd:)?([^/\s@]+)\/([^/\s@]+)$/.exec(spec);
  if (!m) return { error: `${JSON.stringify(spec)} is not an RBD image: expected POOL/IMAGE, e.g. rbd/db` };
  return { pool: m[1], image: m[2] };
}
