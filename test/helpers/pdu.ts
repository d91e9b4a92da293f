// Initiator PDUs for tests that talk below the Initiator class (RawPeer, CommandFlow, the
// parser): the usual fields filled in, each test giving only what it is about.
import { Op, TaskAttr, type DataOut, type ScsiCommand } from '../../src/iscsi/pdu/messages';
import { encodeLun } from '../../src/scsi/lun';

/** A SCSI Command: a simple task on LUN 0, ITT 1, CmdSN 1, no data, unless `over` says otherwise. */
export function scsiCommand(over: Partial<ScsiCommand> = {}): ScsiCommand {
  return {
    op: Op.ScsiCommand,
    immediate: false,
    final: true,
    read: false,
    write: false,
    attr: TaskAttr.Simple,
    lun: encodeLun(0),
    itt: 1,
    expectedDataLength: 0,
    cmdSN: 1,
    expStatSN: 0,
    cdb: Buffer.alloc(16),
    ahs: [],
    data: Buffer.alloc(0),
    ...over,
  };
}

/** A Data-Out on LUN 0: the final one of its sequence, DataSN 0, unless `over` says otherwise. */
export function dataOut(over: Partial<DataOut> & Pick<DataOut, 'itt' | 'ttt' | 'bufferOffset' | 'data'>): DataOut {
  return { op: Op.DataOut, final: true, lun: encodeLun(0), expStatSN: 0, dataSN: 0, ...over };
}
