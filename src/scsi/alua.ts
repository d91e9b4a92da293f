// Asymmetric logical unit access (SPC-4 §5.15): target port groups, the asymmetric access
// state of each group for each logical unit, REPORT / SET TARGET PORT GROUPS, and which
// commands each state lets through.
//
// Numbering. Every gateway (daemon) is one target port group, its `gateway.group` (1..255).
// Each portal of a gateway is one target port: its relative target port identifier is
//   (group - 1) * 256 + portal index + 1
// so identifiers are nonzero, at most 65280 and unique across every gateway and portal;
// group 1's first portal is port 1, what the single portal group was before ALUA. The
// iSCSI layer uses the same number as the portal's Target Portal Group Tag.
//
// Agreement. RTPG must answer the same through every port (ESXi and Windows compare): the
// topology (every gateway's group and ports) comes from config that every gateway shares,
// and a logical unit's states from one AluaStateStore. LocalAluaStates keeps them in memory
// (config defaults, changed by STPG or a config reload); a store shared through RADOS can
// take its place later behind the same interface.

import type { CommandSpec } from './commands';
import type { LogicalUnit } from './logical-unit';
import { ASC, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError, SenseKey, type SenseSpec } from './sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from './task';

/** Asymmetric access states as RTPG and STPG encode them. */
export const enum AluaState {
  ActiveOptimized = 0x0,
  ActiveNonOptimized = 0x1,
  Standby = 0x2,
  Unavailable = 0x3,
  Transitioning = 0xf,
}

/** RTPG STATUS CODE: why the group is in its state. */
export const enum AluaStatus {
  None = 0x00,
  ChangedBySetTargetPortGroups = 0x01,
  ChangedImplicitly = 0x02,
}

export const MAX_GROUP = 255;
export const MAX_PORTALS_PER_GATEWAY = 256;

/** The relative target port identifier of a gateway's portal (see the numbering above). */
export function relativePortId(group: number, portalIndex: number): number {
  if (!Number.isInteger(group) || group < 1 || group > MAX_GROUP) throw new Error(`target port group ${group} is not 1..${MAX_GROUP}`);
  if (!Number.isInteger(portalIndex) || portalIndex < 0 || portalIndex >= MAX_PORTALS_PER_GATEWAY) {
    throw new Error(`portal index ${portalIndex} is not 0..${MAX_PORTALS_PER_GATEWAY - 1}`);
  }
  return (group - 1) * 256 + portalIndex + 1;
}

export interface TargetPortGroup {
  readonly id: number;
  /** Relative target port identifiers of its ports. */
  readonly ports: readonly number[];
}

/** Every gateway's target port group and ports, in group order: the same on every gateway. */
export class AluaTopology {
  private list: readonly TargetPortGroup[] = [];
  /** Port -> group, derived from `list` by update(): every command looks its port up. */
  private portGroup = new Map<number, number>();

  constructor(groups: readonly TargetPortGroup[]) {
    this.update(groups);
  }

  get groups(): readonly TargetPortGroup[] {
    return this.list;
  }

  /** A config reload or a portal added or removed. */
  update(groups: readonly TargetPortGroup[]): void {
    this.list = [...groups].sort((a, b) => a.id - b.id).map((g) => ({ id: g.id, ports: [...g.ports].sort((x, y) => x - y) }));
    const portGroup = new Map<number, number>();
    // In group order, the first group listing a port has it (as a search of the list would).
    for (const g of this.list) for (const p of g.ports) if (!portGroup.has(p)) portGroup.set(p, g.id);
    this.portGroup = portGroup;
  }

  has(group: number): boolean {
    return this.list.some((g) => g.id === group);
  }

  groupOfPort(rtpi: number): number | undefined {
    return this.portGroup.get(rtpi);
  }
}

/** One group's state for one logical unit, and why it is so. */
export interface GroupState {
  readonly state: AluaState;
  readonly status: AluaStatus;
}

/**
 * Where one logical unit's asymmetric access states live. LocalAluaStates keeps them in
 * this process; a shared store (RADOS, compare-and-set) fits the same shape.
 */
export interface AluaStateStore {
  get(group: number): GroupState;
  /** Set some groups' states: explicitly (STPG) or implicitly (config). */
  set(changes: ReadonlyMap<number, AluaState>, status: AluaStatus): void;
}

/** States in memory: a default for every group (from config), changed by STPG or reload. */
export class LocalAluaStates implements AluaStateStore {
  private readonly states = new Map<number, GroupState>();
  /** What a group never set answers: one object, not a new one per command. */
  private readonly fallback: GroupState;

  constructor(fallback: AluaState = AluaState.ActiveOptimized) {
    this.fallback = Object.freeze({ state: fallback, status: AluaStatus.None });
  }

  get(group: number): GroupState {
    return this.states.get(group) ?? this.fallback;
  }

  set(changes: ReadonlyMap<number, AluaState>, status: AluaStatus): void {
    for (const [group, state] of changes) this.states.set(group, { state, status });
  }
}

/**
 * How far into the inaccessible states a command still runs (CommandSpec.aluaAllowed):
 * 'standby' runs in standby, 'unavailable' also in unavailable, 'transitioning' in every
 * state. Commands without it run only in the active states.
 */
export type AluaAllowance = 'standby' | 'unavailable' | 'transitioning';

const RANK: Record<AluaAllowance, number> = { standby: 1, unavailable: 2, transitioning: 3 };

/** States STPG may ask for (SPC-4 §6.46: transitioning is never requested). */
const SETTABLE = new Set<number>([AluaState.ActiveOptimized, AluaState.ActiveNonOptimized, AluaState.Standby, AluaState.Unavailable]);

// Supported-states byte of each descriptor: T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP (no
// offline, no LBA-dependent state).
const SUPPORTED_STATES = 0x80 | 0x08 | 0x04 | 0x02 | 0x01;

/** The ALUA side of one logical unit. */
export class LuAlua {
  constructor(
    readonly topology: AluaTopology,
    private readonly store: AluaStateStore,
    /** Queue ASYMMETRIC ACCESS STATE CHANGED for every I_T nexus of the LU but `except`. */
    private readonly announce: (except?: ItNexus) => void,
  ) {}

  /** The state of the group a nexus's target port belongs to (active/optimized if none). */
  stateFor(nexus: ItNexus): AluaState {
    const group = this.topology.groupOfPort(nexus.relativePortId);
    return group === undefined ? AluaState.ActiveOptimized : this.store.get(group).state;
  }

  stateOf(group: number): GroupState {
    return this.store.get(group);
  }

  /** NOT READY with the state's sense when the command may not run through this port. */
  admission(spec: CommandSpec, nexus: ItNexus): SenseSpec | null {
    const state = this.stateFor(nexus);
    const need = state === AluaState.Standby ? 1 : state === AluaState.Unavailable ? 2 : state === AluaState.Transitioning ? 3 : 0;
    if (need === 0 || (spec.aluaAllowed !== undefined && RANK[spec.aluaAllowed] >= need)) return null;
    const code =
      state === AluaState.Standby
        ? ASC.TARGET_PORT_IN_STANDBY_STATE
        : state === AluaState.Unavailable
          ? ASC.TARGET_PORT_IN_UNAVAILABLE_STATE
          : ASC.ASYMMETRIC_ACCESS_STATE_TRANSITION;
    return { key: SenseKey.NotReady, asc: code.asc, ascq: code.ascq };
  }

  /**
   * Implicit change (config reload; later a peer's notification): applies the states that
   * differ and tells every I_T nexus. Returns whether anything changed.
   */
  applyImplicit(states: ReadonlyMap<number, AluaState>): boolean {
    const changes = new Map<number, AluaState>();
    for (const [group, state] of states) if (this.store.get(group).state !== state) changes.set(group, state);
    if (changes.size === 0) return false;
    this.store.set(changes, AluaStatus.ChangedImplicitly);
    this.announce();
    return true;
  }

  /** Groups or ports were added or removed (config): RTPG data changed for every nexus. */
  topologyChanged(): void {
    this.announce();
  }

  /** REPORT TARGET PORT GROUPS (MAINTENANCE IN, service action 0Ah). */
  report(task: ScsiTask): ScsiResult {
    const c = task.cdb;
    const format = c[1] >> 5;
    if (format > 1) throw invalidFieldInCdb(1, 7);
    const alloc = c.readUInt32BE(6);
    const descriptors = this.topology.groups.map((g) => {
      const { state, status } = this.store.get(g.id);
      const d = Buffer.alloc(8 + 4 * g.ports.length);
      d[0] = state; // PREF = 0
      d[1] = SUPPORTED_STATES;
      d.writeUInt16BE(g.id, 2);
      d[5] = status;
      d[7] = g.ports.length;
      g.ports.forEach((p, i) => d.writeUInt16BE(p, 8 + 4 * i + 2));
      return d;
    });
    const header = Buffer.alloc(format === 1 ? 8 : 4);
    if (format === 1) {
      header[4] = 0x10; // FORMAT TYPE 001b
      header[5] = 0; // IMPLICIT TRANSITION TIME: changes are immediate
    }
    const data = Buffer.concat([header, ...descriptors]);
    data.writeUInt32BE(data.length - 4, 0); // RETURN DATA LENGTH: what follows these 4 bytes
    return { status: ScsiStatus.Good, data: data.length > alloc ? data.subarray(0, alloc) : data };
  }

  /**
   * SET TARGET PORT GROUPS (MAINTENANCE OUT, service action 0Ah): a 4-byte header, then
   * 4-byte descriptors (state, group). The whole list is checked before anything changes;
   * then every other I_T nexus of the LU gets ASYMMETRIC ACCESS STATE CHANGED.
   */
  set(task: ScsiTask): ScsiResult {
    const len = task.cdb.readUInt32BE(6);
    if (len === 0) return { status: ScsiStatus.Good, dataOutLength: 0 };
    const data = task.dataOut;
    if (data === null || data.length < len || len < 4 || (len - 4) % 4 !== 0) throw parameterListLengthError();
    const changes = new Map<number, AluaState>();
    for (let at = 4; at < len; at += 4) {
      const state = data[at] & 0x0f;
      const group = data.readUInt16BE(at + 2);
      if (!SETTABLE.has(state)) throw invalidFieldInParameterList(at, 3);
      if (!this.topology.has(group) || changes.has(group)) throw invalidFieldInParameterList(at + 2);
      changes.set(group, state);
    }
    this.store.set(changes, AluaStatus.ChangedBySetTargetPortGroups);
    this.announce(task.nexus);
    return { status: ScsiStatus.Good, dataOutLength: len };
  }
}

/** A topology of one group with the given ports, all active/optimized: a lone target. */
export function singleGroup(group = 1, ports: readonly number[] = [relativePortId(group, 0)]): AluaTopology {
  return new AluaTopology([{ id: group, ports }]);
}

/** REPORT TARGET PORT GROUPS: the same groups, states and ports through every port. */
export function reportTargetPortGroups(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return lu.alua.report(task);
}

/** SET TARGET PORT GROUPS (explicit ALUA). */
export function setTargetPortGroups(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return lu.alua.set(task);
}
