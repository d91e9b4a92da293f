// The SCSI core's entry point for the transport: one task (which carries the LUN map its
// I_T nexus sees), one result. REPORT LUNS is answered here from the map (it is addressed to the
// target, whatever LUN it names); anything for a LUN in the map goes to its LogicalUnit;
// a LUN not in the map gets what SPC-4 says an unsupported logical unit answers.

import { ASC, buildSense, CheckCondition, checkCondition, fixedSense, invalidFieldInCdb, SenseKey, type SenseSpec } from './sense';
import { writeLunField } from './lun';
import { standardInquiryData, truncate } from './spc';
import { ScsiStatus, type ScsiResult, type ScsiTask } from './task';

const OP_INQUIRY = 0x12;
const OP_REQUEST_SENSE = 0x03;
const OP_REPORT_LUNS = 0xa0;

export function executeScsi(task: ScsiTask): Promise<ScsiResult> {
  const r = startScsi(task);
  return r instanceof Promise ? r : Promise.resolve(r);
}

/** executeScsi(), answering synchronously when the command completes at once (the transport's hot path). */
export function startScsi(task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const op = task.cdb[0];
  if (op === OP_REPORT_LUNS) return guard(() => reportLuns(task));
  const lu = task.luns.get(task.lun);
  if (lu !== undefined) return lu.start(task);
  return guard(() => unsupportedLun(task));
}

function guard(fn: () => ScsiResult): ScsiResult {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CheckCondition) return { status: ScsiStatus.CheckCondition, sense: fixedSense(err.sense) };
    throw err;
  }
}

/**
 * REPORT LUNS: SELECT REPORT 00h (all LUNs the nexus may address) and 02h (all) list the
 * map, 01h (well-known LUs only) an empty list; anything else is INVALID FIELD IN CDB.
 */
export function reportLuns(task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const luns = task.luns;
  if ((c[11] & 0x04) !== 0) throw invalidFieldInCdb(11, 2); // NACA
  const select = c[2];
  const alloc = c.readUInt32BE(6);
  let list: number[];
  if (select === 0x00 || select === 0x02) {
    list = [...luns.keys()].filter((l) => l >= 0 && l < 16384).sort((x, y) => x - y);
  } else if (select === 0x01) {
    list = [];
  } else {
    throw invalidFieldInCdb(2);
  }
  const b = Buffer.alloc(8 + 8 * list.length);
  b.writeUInt32BE(8 * list.length, 0);
  list.forEach((lun, i) => writeLunField(b, lun, 8 + 8 * i));
  return { status: ScsiStatus.Good, data: truncate(b, alloc) };
}

const LU_NOT_SUPPORTED: SenseSpec = {
  key: SenseKey.IllegalRequest,
  asc: ASC.LOGICAL_UNIT_NOT_SUPPORTED.asc,
  ascq: ASC.LOGICAL_UNIT_NOT_SUPPORTED.ascq,
};

/**
 * A LUN nobody mapped: INQUIRY returns standard data with peripheral qualifier 011b /
 * device type 1Fh, REQUEST SENSE returns LOGICAL UNIT NOT SUPPORTED as its sense data,
 * everything else is CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED.
 */
function unsupportedLun(task: ScsiTask): ScsiResult {
  const c = task.cdb;
  switch (c[0]) {
    case OP_INQUIRY: {
      if ((c[1] & 0x01) !== 0) break; // no VPD pages for a LU that is not there
      if (c[2] !== 0) throw invalidFieldInCdb(2);
      return { status: ScsiStatus.Good, data: truncate(standardInquiryData(0x7f), c.readUInt16BE(3)) };
    }
    case OP_REQUEST_SENSE: {
      const desc = (c[1] & 0x01) !== 0;
      return { status: ScsiStatus.Good, data: truncate(buildSense(LU_NOT_SUPPORTED, desc), c[4]) };
    }
  }
  throw checkCondition(SenseKey.IllegalRequest, ASC.LOGICAL_UNIT_NOT_SUPPORTED);
}
