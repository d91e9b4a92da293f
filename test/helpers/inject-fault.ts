// Preloaded into the daemon (node --require) by test/integration/fault-boundary.test.ts: it
// makes two of the connection's PDU handlers throw on a marker, the way a bug would.
//   NOP-Out whose data is "throw-sync"        -> the handler throws (synchronous path)
//   TMF ABORT TASK with RefTaskTag 0xdeadbeef -> the handler rejects (asynchronous path)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Connection } = require('../../src/iscsi/connection') as typeof import('../../src/iscsi/connection');

type Handlers = {
  onNopOut(pdu: { data: Buffer }): void;
  onTaskMgmt(session: unknown, pdu: { refTaskTag: number }): Promise<void>;
};
const proto = Connection.prototype as unknown as Handlers;
const nop = proto.onNopOut;
proto.onNopOut = function (this: Handlers, pdu) {
  if (pdu.data.toString() === 'throw-sync') throw new Error('injected fault in the NOP-Out handler');
  return nop.call(this, pdu);
};
const tmf = proto.onTaskMgmt;
proto.onTaskMgmt = function (this: Handlers, session, pdu) {
  if (pdu.refTaskTag === 0xdeadbeef) return Promise.reject(new Error('injected fault in the TMF handler'));
  return tmf.call(this, session, pdu);
};
