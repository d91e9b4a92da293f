// What a finished SCSI command sends back: Data-In PDUs (status in the last one when it
// can) and/or a SCSI Response, with residuals against the Expected Data Transfer Length.

import { ScsiStatus, type ScsiResult } from '../scsi/task';
import { readBudget } from './data-budget';
import { Op, RESERVED_TAG, type DataIn } from './pdu/messages';
import type { FlowSink } from './command-flow';
import type { Command, Session } from './session';

/** The part of the connection an answer goes through. */
export type ResultSink = Pick<FlowSink, 'send' | 'afterWrite' | 'cork' | 'uncork' | 'takeStatSN'>;

const EMPTY = Buffer.alloc(0);

/**
 * Answer a finished command. READ data goes in Data-In PDUs of at most the initiator's
 * MaxRecvDataSegmentLength, with the F bit at each MaxBurstLength and the status in the
 * last one (S bit) when it is GOOD; otherwise, and for commands without Data-In, a SCSI
 * Response carries status, sense and residual. `readBytes` of the read budget come back
 * once the data has been written (or at once, when there is none to send).
 */
export function sendResult(session: Session, cmd: Command, result: ScsiResult, readBytes: number, sink: ResultSink): void {
  const edtl = cmd.expectedLength;
  const data = result.data;
  // What the command moved (its data, or the Data-Out it used) against what the initiator expected.
  const moved = data && data.length > 0 ? data.length : (result.dataOutLength ?? 0);
  const overflow = moved > edtl;
  const underflow = moved < edtl;
  const residual = overflow ? moved - edtl : edtl - moved;
  let dataSN = 0;

  if (data && data.length > 0 && cmd.read) {
    const len = Math.min(data.length, edtl);
    const statusInData = len > 0 && !result.sense && (result.status === ScsiStatus.Good || result.status === ScsiStatus.ConditionMet);
    const seg = session.params.maxSendDataSegmentLength;
    const burst = session.params.maxBurstLength;
    session.counters.readBytes += len;
    if (len > 0) sink.cork();
    let copied = true;
    for (let off = 0; off < len;) {
      const n = Math.min(seg, len - off, burst - (off % burst));
      const last = off + n >= len;
      const pdu: DataIn = {
        op: Op.DataIn,
        final: last || (off + n) % burst === 0,
        ack: false,
        overflow: last && statusInData && overflow,
        underflow: last && statusInData && underflow,
        hasStatus: last && statusInData,
        status: last && statusInData ? result.status : 0,
        lun: cmd.lunRaw,
        itt: cmd.itt,
        ttt: RESERVED_TAG,
        statSN: last && statusInData ? sink.takeStatSN() : 0,
        expCmdSN: session.expCmdSN,
        maxCmdSN: session.maxCmdSN,
        dataSN: dataSN++,
        bufferOffset: off,
        residualCount: last && statusInData ? residual : 0,
        data: data.subarray(off, off + n),
      };
      if (!sink.send(pdu)) copied = false;
      off += n;
    }
    if (len > 0) sink.uncork();
    sink.afterWrite(result.release ?? data, readBytes, copied);
    if (statusInData) return;
  } else {
    // Data the initiator did not ask to read is never sent.
    if (data) sink.afterWrite(result.release ?? data, readBytes, true);
    else if (readBytes > 0) readBudget.give(readBytes);
  }
  sink.send({
    op: Op.ScsiResponse,
    bidiOverflow: false,
    bidiUnderflow: false,
    overflow,
    underflow,
    response: 0,
    status: result.status,
    itt: cmd.itt,
    snackTag: 0,
    statSN: sink.takeStatSN(),
    expCmdSN: session.expCmdSN,
    maxCmdSN: session.maxCmdSN,
    expDataSN: dataSN,
    bidiResidualCount: 0,
    residualCount: residual,
    sense: result.sense,
    data: EMPTY,
  });
}
