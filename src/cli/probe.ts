// `iscsi-target probe iscsi://host[:port]/iqn/lun`: log in with the built-in initiator, then
// INQUIRY, READ CAPACITY(16) and a read of the first block. A quick end-to-end check.
import type { Command } from 'commander';
import type { Initiator } from '../initiator/initiator';
import { formatSize } from '../config/size';
import { EXIT, err, out, type CliContext } from './context';
import { addConfigOption, addJsonOption, type JsonOptions } from './options';

export interface ProbeUrl {
  host: string;
  port: number;
  iqn: string;
  lun: number;
  chap?: { user: string; secret: string };
}

/**
 * iscsi://[user[%secret]@]host[:port]/iqn/lun (libiscsi's form). A user without a secret
 * takes it from `secretFromEnv` ($ISCSI_CHAP_SECRET), which keeps it out of `ps`.
 */
export function parseIscsiUrl(url: string, secretFromEnv?: string): ProbeUrl | { error: string } {
  const m = /^iscsi:\/\/(?:([^%@/]+)(?:%([^@/]+))?@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/([^/]+)\/(\d+)$/.exec(url);
  if (!m) return { error: `${redactUrl(url)} is not iscsi://[user%secret@]host[:port]/iqn/lun` };
  const secret = m[2] !== undefined ? decode(m[2]) : secretFromEnv;
  if (m[1] && secret === undefined)
    return { error: `${redactUrl(url)} names a CHAP user but no secret (give user%secret@ or set $ISCSI_CHAP_SECRET)` };
  return {
    host: m[3].replace(/^\[|\]$/g, ''),
    port: m[4] ? Number(m[4]) : 3260,
    iqn: decode(m[5]),
    lun: Number(m[6]),
    chap: m[1] ? { user: decode(m[1]), secret: secret! } : undefined,
  };
}

/** Percent-decoding where it is well-formed; a stray % stays as it is. */
function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The URL as it may be shown: any CHAP secret in it replaced by ***. */
export function redactUrl(url: string): string {
  return url.replace(/^(iscsi:\/\/[^%@/]*)%[^@]*@/i, '$1%***@');
}

const LOGIN_STATUS: Record<number, string> = {
  0x0201: 'authentication failed (CHAP user or secret wrong or missing)',
  0x0202: 'not authorized: no acl admits this initiator name (give it with -i)',
  0x0203: 'no such target',
  0x0300: 'the target is out of resources',
};

function explain(e: unknown): string {
  const m = (e as Error)?.message ?? String(e);
  const code = /login failed: status 0x([0-9a-f]{4})/.exec(m);
  const text = code ? LOGIN_STATUS[parseInt(code[1], 16)] : undefined;
  return text ? `${m}: ${text}` : m;
}

async function probe(ctx: CliContext, url: string, o: JsonOptions & { initiator?: string }): Promise<number> {
  const u = parseIscsiUrl(url, ctx.env.ISCSI_CHAP_SECRET);
  if ('error' in u) {
    err(ctx, `error: ${u.error}`);
    return EXIT.FAILURE;
  }
  const { Initiator: InitiatorClass } = await import('../initiator/initiator');
  const t0 = Date.now();
  let ini: Initiator | undefined;
  try {
    ini = await InitiatorClass.connect({
      host: u.host,
      port: u.port,
      targetName: u.iqn,
      initiatorName: o.initiator,
      chap: u.chap,
      timeoutMs: 10000,
    });
    const loginMs = Date.now() - t0;
    await ini.testUnitReady(u.lun);
    const inq = await ini.command(u.lun, Buffer.from([0x12, 0, 0, 0, 96, 0]), { readLength: 96 });
    if (inq.status !== 0) throw new Error(`INQUIRY failed: status 0x${inq.status.toString(16)}`);
    const d = inq.data;
    const vendor = d.subarray(8, 16).toString('latin1').trim();
    const product = d.subarray(16, 32).toString('latin1').trim();
    const revision = d.subarray(32, 36).toString('latin1').trim();
    const cap = await ini.readCapacity(u.lun);
    const bytes = Number(cap.blocks) * cap.blockSize;
    const r0 = Date.now();
    const block = await ini.read(u.lun, 0, 1, cap.blockSize);
    const readMs = Date.now() - r0;
    await ini.logout().catch(() => undefined);
    const result = {
      ok: true,
      target: u.iqn,
      lun: u.lun,
      negotiated: ini.negotiated,
      inquiry: { peripheralType: d[0] & 0x1f, vendor, product, revision },
      capacity: { blocks: Number(cap.blocks), blockSize: cap.blockSize, bytes },
      firstBlock: { bytes: block.length, allZero: block.every((b) => b === 0), ms: readMs },
      loginMs,
    };
    if (o.json) out(ctx, JSON.stringify(result, null, 2));
    else {
      out(ctx, `login to ${u.iqn} at ${u.host}:${u.port}: ok (${loginMs} ms)`);
      out(ctx, `LUN ${u.lun}: ${vendor} ${product} ${revision} (peripheral type ${result.inquiry.peripheralType})`);
      out(ctx, `capacity: ${formatSize(bytes)} (${cap.blocks} blocks of ${cap.blockSize} bytes)`);
      out(ctx, `read block 0: ${block.length} bytes in ${readMs} ms${result.firstBlock.allZero ? ' (all zeros)' : ''}`);
    }
    return EXIT.OK;
  } catch (e) {
    ini?.close();
    const message = explain(e);
    if (o.json) out(ctx, JSON.stringify({ ok: false, message }, null, 2));
    else err(ctx, `error: probe ${redactUrl(url)}: ${message}`);
    return EXIT.FAILURE;
  }
}

export function registerProbe(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  // --config is accepted like everywhere else; probe needs only the URL.
  addJsonOption(
    addConfigOption(
      program
        .command('probe <url>')
        .description(
          'log in to iscsi://[user[%secret]@]host[:port]/iqn/lun: inquiry, capacity, one read (the secret may come from $ISCSI_CHAP_SECRET)',
        ),
    ),
  )
    .option('-i, --initiator <iqn>', 'initiator name to log in as')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target probe iscsi://127.0.0.1/iqn.2026-11.io.iscsi-target:default/0
  $ iscsi-target probe iscsi://host-a%host-a-secret1@san.example/iqn.2026-11.io.example:san1/0 -i iqn.1994-05.com.redhat:host-a`,
    )
    .action(async (url: string, o: JsonOptions & { initiator?: string }) => setExit(await probe(ctx, url, o)));
}
