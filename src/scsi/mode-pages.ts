// Mode parameter pages of a logical unit (SPC-4 §7.5, SBC-3 §6.4): the state behind
// MODE SENSE / MODE SELECT, shared by every I_T nexus (TST = 000b).
//
//   0x01 Read-Write Error Recovery  nothing changeable
//   0x08 Caching                    WCE changeable (default 1: we fdatasync on FUA and
//                                   SYNCHRONIZE CACHE; with WCE=0 every write is synced)
//   0x0A Control                    D_SENSE and SWP changeable (default 0)
//
// No page is saveable (PS = 0); PC = saved values is refused by the handler.

export const enum PageControl {
  Current = 0,
  Changeable = 1,
  Default = 2,
  Saved = 3,
}

export const PAGE_READ_WRITE_ERROR_RECOVERY = 0x01;
export const PAGE_CACHING = 0x08;
export const PAGE_CONTROL = 0x0a;
export const PAGE_ALL = 0x3f;

/** Supported pages in the order MODE SENSE "all pages" returns them (ascending). */
export const SUPPORTED_PAGES: readonly number[] = [PAGE_READ_WRITE_ERROR_RECOVERY, PAGE_CACHING, PAGE_CONTROL];

/** Total length of each page including its 2-byte header. */
const PAGE_SIZE: Record<number, number> = {
  [PAGE_READ_WRITE_ERROR_RECOVERY]: 12,
  [PAGE_CACHING]: 20,
  [PAGE_CONTROL]: 12,
};

export interface ModeValues {
  /** Caching page: write cache enable. */
  wce: boolean;
  /** Control page: descriptor-format sense data. */
  dSense: boolean;
  /** Control page: software write protect. */
  swp: boolean;
}

export const DEFAULT_MODE_VALUES: Readonly<ModeValues> = Object.freeze({ wce: true, dSense: false, swp: false });

export function isSupportedPage(code: number): boolean {
  return PAGE_SIZE[code] !== undefined;
}

export function pageSize(code: number): number {
  return PAGE_SIZE[code] ?? 0;
}

/** Encode one page for MODE SENSE with the given page control. */
export function encodePage(code: number, pc: PageControl, current: ModeValues): Buffer {
  const size = PAGE_SIZE[code];
  if (size === undefined) throw new Error(`unsupported mode page 0x${code.toString(16)}`);
  const b = Buffer.alloc(size);
  b[0] = code; // PS = 0 (not saveable), SPF = 0
  b[1] = size - 2;
  if (pc === PageControl.Changeable) {
    writeChangeableMask(code, b);
    return b;
  }
  const v = pc === PageControl.Default ? DEFAULT_MODE_VALUES : current;
  switch (code) {
    case PAGE_READ_WRITE_ERROR_RECOVERY:
      b[2] = 0xc0; // AWRE | ARRE: automatic reallocation (nothing to reallocate on a file)
      break;
    case PAGE_CACHING:
      b[2] = v.wce ? 0x04 : 0x00;
      break;
    case PAGE_CONTROL:
      b[2] = v.dSense ? 0x04 : 0x00; // TST 000b, D_SENSE
      b[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering; QERR 00b
      b[4] = v.swp ? 0x08 : 0x00; // SWP
      b[8] = 0xff; // BUSY TIMEOUT PERIOD: unlimited
      b[9] = 0xff;
      break;
  }
  return b;
}

function writeChangeableMask(code: number, b: Buffer): void {
  switch (code) {
    case PAGE_CACHING:
      b[2] = 0x04; // WCE
      break;
    case PAGE_CONTROL:
      b[2] = 0x04; // D_SENSE
      b[4] = 0x08; // SWP
      break;
  }
}

/**
 * Check a page sent with MODE SELECT against the current values. Returns the new values,
 * or the offset within `page` of the first byte that tries to change something that is
 * not changeable.
 */
export function applyPage(code: number, page: Buffer, current: ModeValues): { values: ModeValues } | { badByte: number; bit?: number } {
  const cur = encodePage(code, PageControl.Current, current);
  const mask = encodePage(code, PageControl.Changeable, current);
  for (let i = 2; i < cur.length; i++) {
    const diff = (page[i] ^ cur[i]) & ~mask[i] & 0xff;
    if (diff !== 0) return { badByte: i, bit: 31 - Math.clz32(diff) };
  }
  const values: ModeValues = { ...current };
  switch (code) {
    case PAGE_CACHING:
      values.wce = (page[2] & 0x04) !== 0;
      break;
    case PAGE_CONTROL:
      values.dSense = (page[2] & 0x04) !== 0;
      values.swp = (page[4] & 0x08) !== 0;
      break;
  }
  return { values };
}
