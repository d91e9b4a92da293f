// A live session as `status` shows it.
import type { Session } from '../iscsi/session';
import type { SessionStatus } from './protocol';

export function sessionStatus(s: Session, address: string): SessionStatus {
  const p = s.params;
  return {
    tsih: s.tsih,
    type: s.type,
    initiator: s.initiatorName,
    address,
    target: s.targetName ?? null,
    luns: [...s.luns].sort((a, b) => a[0] - b[0]).map(([lun, lu]) => ({ lun, volume: lu.name })),
    params: {
      HeaderDigest: p.headerDigest ? 'CRC32C' : 'None',
      DataDigest: p.dataDigest ? 'CRC32C' : 'None',
      MaxRecvDataSegmentLength: p.maxRecvDataSegmentLength,
      MaxXmitDataSegmentLength: p.maxSendDataSegmentLength,
      MaxBurstLength: p.maxBurstLength,
      FirstBurstLength: p.firstBurstLength,
      ImmediateData: p.immediateData,
      InitialR2T: p.initialR2T,
      MaxOutstandingR2T: p.maxOutstandingR2T,
      ErrorRecoveryLevel: p.errorRecoveryLevel,
    },
    startedAt: new Date(s.createdAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - s.createdAt) / 1000),
    ...s.counters,
  };
}
