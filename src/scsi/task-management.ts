// Task management functions (SAM-5 §7; RFC 7143 §11.5): what each one reaches and does.
// The transport translates its function codes and responses and supplies a TmfScope (the
// issuing I_T nexus, its LUN map, and how to abort tasks, which only it can find); the
// semantics (which tasks, which logical units, which resets, who may) live here, as in
// LIO's target core.
//
// Scope, so that one host never reaches another's state (docs/security.md):
//   ABORT TASK            the issuer's own task with that tag, on a LUN of its map
//   ABORT TASK SET        the issuer's own tasks on that LU
//   CLEAR TASK SET        every task on that LU (one task set per LU, TST 000b)
//   LOGICAL UNIT RESET    the same, then the LU's reset (reservation, mode pages, 29/03)
//   TARGET WARM RESET     a LOGICAL UNIT RESET of every LU in the issuer's map (29/00),
//   TARGET COLD RESET     the same with 29/01, then the issuing initiator's sessions end;
//                         both only with allowTargetReset, else FUNCTION AUTHORIZATION FAILED
//   CLEAR ACA, TASK REASSIGN  not supported (we never establish ACA; reassignment needs ERL 2)

import type { LogicalUnit, ResetKind } from './logical-unit';
import type { ItNexus } from './task';

/** Task management function codes (RFC 7143 §11.5.1). */
export const enum TmfFunction {
  AbortTask = 1,
  AbortTaskSet = 2,
  ClearAca = 3,
  ClearTaskSet = 4,
  LogicalUnitReset = 5,
  TargetWarmReset = 6,
  TargetColdReset = 7,
  TaskReassign = 8,
}

/** Task management responses (RFC 7143 §11.6.1). */
export const enum TmfResponse {
  Complete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  ReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  Rejected = 255,
}

/** What a task management function may act on: the issuer, and the transport's reach into task sets. */
export interface TmfScope {
  readonly nexus: ItNexus;
  /** The issuer's LUN map: nothing outside it is touched. */
  readonly luns: ReadonlyMap<number, LogicalUnit>;
  /** May the issuer reset the target (config allowTargetReset)? */
  readonly mayResetTarget: boolean;
  /** Abort the issuer's task with this tag if it is addressed to `lun`; false when there is none. */
  abortTask(tag: number, lun: number): Promise<boolean>;
  /** Abort the issuer's own tasks addressed to `lun`. */
  abortOwnTasks(lun: number): Promise<void>;
  /** Abort every task, of any I_T nexus, on these logical units. */
  abortAllTasks(lus: ReadonlySet<LogicalUnit>): Promise<void>;
  /** TARGET COLD RESET: end the issuing initiator's sessions of this target (its own after the response). */
  endInitiatorSessions(): void;
  /** A refused function, for the log. */
  refused?(why: string): void;
}

/** Perform task management function `fn` for LUN `lun` (and task `refTaskTag`). */
export async function performTmf(fn: number, lun: number, refTaskTag: number, scope: TmfScope): Promise<TmfResponse> {
  switch (fn) {
    case TmfFunction.AbortTask:
      if (!scope.luns.has(lun)) return TmfResponse.LunDoesNotExist;
      return (await scope.abortTask(refTaskTag, lun)) ? TmfResponse.Complete : TmfResponse.TaskDoesNotExist;
    case TmfFunction.AbortTaskSet:
      if (!scope.luns.has(lun)) return TmfResponse.LunDoesNotExist;
      await scope.abortOwnTasks(lun);
      return TmfResponse.Complete;
    case TmfFunction.ClearTaskSet:
    case TmfFunction.LogicalUnitReset: {
      const lu = scope.luns.get(lun);
      if (lu === undefined) return TmfResponse.LunDoesNotExist;
      await scope.abortAllTasks(new Set([lu]));
      if (fn === TmfFunction.LogicalUnitReset) lu.reset('lun', scope.nexus);
      return TmfResponse.Complete;
    }
    case TmfFunction.TargetWarmReset:
    case TmfFunction.TargetColdReset: {
      if (!scope.mayResetTarget) {
        scope.refused?.('target resets need allowTargetReset in the ACL');
        return TmfResponse.AuthorizationFailed;
      }
      const lus = new Set(scope.luns.values());
      await scope.abortAllTasks(lus);
      const kind: ResetKind = fn === TmfFunction.TargetWarmReset ? 'warm' : 'cold';
      for (const lu of lus) lu.reset(kind, scope.nexus);
      if (fn === TmfFunction.TargetColdReset) scope.endInitiatorSessions();
      return TmfResponse.Complete;
    }
    case TmfFunction.ClearAca:
      return TmfResponse.NotSupported;
    case TmfFunction.TaskReassign:
      return TmfResponse.ReassignmentNotSupported;
    default:
      return TmfResponse.NotSupported;
  }
}
