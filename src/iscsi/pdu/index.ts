// The iSCSI PDU codec: typed PDUs, serializer, streaming parser, digests, text keys.
export * from './messages';
export * from './digest';
export * from './text';
export * from './serializer';
export * from './parser';
export * from './decoder';
