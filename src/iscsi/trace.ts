// What the connection logs about PDUs and logins at debug and trace level. Built only when
// that level is on (callers test logFlags first), so a busy target pays nothing for it.
import type { Pdu } from './pdu/messages';
import { parseTextKeys } from './pdu/text';

const OP_NAMES: Record<number, string> = {
  0x00: 'NOP-Out',
  0x01: 'SCSI Command',
  0x02: 'Task Management Request',
  0x03: 'Login Request',
  0x04: 'Text Request',
  0x05: 'Data-Out',
  0x06: 'Logout Request',
  0x10: 'SNACK',
  0x20: 'NOP-In',
  0x21: 'SCSI Response',
  0x22: 'Task Management Response',
  0x23: 'Login Response',
  0x24: 'Text Response',
  0x25: 'Data-In',
  0x26: 'Logout Response',
  0x31: 'R2T',
  0x32: 'Async Message',
  0x3f: 'Reject',
};

/** A PDU's header fields for a trace line: names, numbers, the CDB in hex; no data. */
export function describePdu(pdu: Pdu): Record<string, unknown> {
  const o: Record<string, unknown> = { op: OP_NAMES[pdu.op] ?? `0x${pdu.op.toString(16)}` };
  for (const [k, v] of Object.entries(pdu)) {
    if (k === 'op' || k === 'data' || k === 'ahs') continue;
    if (typeof v === 'bigint') o[k] = `0x${v.toString(16)}`;
    else if (Buffer.isBuffer(v)) o[k] = v.toString('hex');
    else if (v !== null && typeof v !== 'object') o[k] = v;
  }
  o.dataLength = pdu.data.length;
  return o;
}

/** Login or Text keys as an object (CHAP_R and CHAP_C are redacted by the logger). */
export function textKeys(data: Buffer): Record<string, string> {
  try {
    return Object.fromEntries(parseTextKeys(data));
  } catch {
    return { unparsable: `${data.length} bytes` };
  }
}
