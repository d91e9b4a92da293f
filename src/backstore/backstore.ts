// The one interface every volume store implements. A backstore sees byte ranges
// only: no SCSI, no iSCSI. Errors are thrown as Node errors with their `code`
// (EIO, ENOSPC, ...); the SCSI core maps them to sense data.

export interface Backstore {
  /** Human-readable location: the file or device path, or "memory". */
  readonly path: string;
  /** Current size in bytes (a multiple of the volume's block size). */
  readonly size: number;
  readonly readonly: boolean;
  /** Fill `buf` completely from byte `offset`. Short reads past EOF read zeros. */
  read(buf: Buffer, offset: number): Promise<void>;
  /** Write all of `buf` at byte `offset`. */
  write(buf: Buffer, offset: number): Promise<void>;
  /** Make every completed write durable (fdatasync). */
  flush(): Promise<void>;
  close(): Promise<void>;
}
