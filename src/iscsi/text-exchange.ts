// Text exchanges: a long text answer (Login or Text Response) split into PDUs of at most
// the initiator's MaxRecvDataSegmentLength, sent one per initiator request (C bit), and
// the full-feature Text Request exchange built on it.

import { RESERVED_TAG, RejectReason, type TextRequest } from './pdu/messages';
import { encodeTextKeys, parseTextKeys } from './pdu/text';

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

/** Text Request data a peer may continue (C bit) before it is rejected. */
const MAX_TEXT_BYTES = 64 * 1024;
/** Long Text Responses kept for the initiator to fetch; older ones are dropped. */
const MAX_TEXT_SPLITTERS = 4;

/** What a Text Request gets: a Reject, or a Text Response with these fields. */
export type TextAnswer = { reject: RejectReason } | { final: boolean; cont: boolean; ttt: number; data: Buffer };

/**
 * The full-feature Text Request exchange of one connection (RFC 7143 §11.10): requests
 * continued with the C bit are gathered (acknowledged with an empty response and a TTT),
 * long answers are handed out piece by piece, each fetched with the TTT of the last.
 */
export class TextExchange {
  /** Long answers being delivered, by Target Transfer Tag. */
  private readonly out = new Map<number, TextSplitter>();
  private pieces: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly allocTtt: () => number,
    /** The answer to a complete request's keys. */
    private readonly answer: (pairs: Array<[string, string]>) => Array<[string, string]>,
  ) {}

  /** One Text Request; `maxSegment` is the initiator's MaxRecvDataSegmentLength. */
  request(pdu: TextRequest, maxSegment: number): TextAnswer {
    if (pdu.ttt !== RESERVED_TAG) {
      const splitter = this.out.get(pdu.ttt);
      if (!splitter) return { reject: RejectReason.InvalidPduField };
      return this.piece(splitter, pdu.ttt);
    }
    this.pieces.push(pdu.data);
    this.bytes += pdu.data.length;
    if (this.bytes > MAX_TEXT_BYTES) {
      this.pieces = [];
      this.bytes = 0;
      return { reject: RejectReason.ProtocolError };
    }
    // More text follows: acknowledge with an empty response carrying a TTT.
    if (pdu.cont) return { final: false, cont: false, ttt: this.allocTtt(), data: Buffer.alloc(0) };
    const text = this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces);
    this.pieces = [];
    this.bytes = 0;
    let pairs: Array<[string, string]>;
    try {
      pairs = parseTextKeys(text);
    } catch {
      return { reject: RejectReason.ProtocolError };
    }
    return this.piece(new TextSplitter(encodeTextKeys(this.answer(pairs)), maxSegment), RESERVED_TAG);
  }

  private piece(splitter: TextSplitter, ttt: number): TextAnswer {
    const data = splitter.next();
    let tag = RESERVED_TAG;
    if (ttt !== RESERVED_TAG) this.out.delete(ttt);
    if (!splitter.done) {
      tag = this.allocTtt();
      // An initiator that never fetches the rest must not pile these up: drop the oldest.
      if (this.out.size >= MAX_TEXT_SPLITTERS) this.out.delete(this.out.keys().next().value!);
      this.out.set(tag, splitter);
    }
    return { final: splitter.done, cont: !splitter.done, ttt: tag, data };
  }
}
