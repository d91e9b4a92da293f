// A long text answer (Login or Text Response) split into PDUs of at most the
// initiator's MaxRecvDataSegmentLength, sent one per initiator request (C bit).

export class TextSplitter {
  private offset = 0;

  constructor(
    private readonly text: Buffer,
    private readonly maxSegment: number,
  ) {}

  /** The next piece (the whole text, or empty, when it fits in one PDU). */
  next(): Buffer {
    const end = Math.min(this.text.length, this.offset + this.maxSegment);
    const piece = this.text.subarray(this.offset, end);
    this.offset = end;
    return piece;
  }

  get done(): boolean {
    return this.offset >= this.text.length;
  }
}
