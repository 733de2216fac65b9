// TypeScript mirror of the broker socket protocol in native/include/spillover_protocol.h:
// fixed 64-byte little-endian frames. Encoding, validation and a stream splitter; no I/O.
// Change nothing here without changing the header, docs/protocol.md and the shared fixtures.

export const PROTO_MAGIC = 0x564c5053; // "SPLV" read as little-endian bytes
export const PROTO_VERSION = 1;
export const FRAME_SIZE = 64;

export const MsgType = {
  HELLO: 1,
  WELCOME: 2,
  VRAM_REQUEST: 3,
  VRAM_GRANT: 4,
  PINNED_GROW: 5,
  PINNED_GRANT: 6,
  PINNED_RETURN: 7,
  LEASE_UPDATE: 8,
  BYE: 9,
  ERROR: 10,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const DenyReason = { NONE: 0, BUDGET: 1, PRESSURE: 2, CLIENT_LIMIT: 3, QUOTA: 4 } as const;
export type DenyReason = (typeof DenyReason)[keyof typeof DenyReason];

export const PressureLevel = { OK: 0, WARN: 1, CRITICAL: 2 } as const;
export type PressureLevel = (typeof PressureLevel)[keyof typeof PressureLevel];

export const ErrorCode = {
  BAD_MAGIC: 1,
  BAD_VERSION: 2,
  BAD_TYPE: 3,
  OUT_OF_ORDER: 4,
  BAD_VALUE: 5,
  /** HELLO disagrees with the kernel's SO_PEERCRED (pid; uid for a per-user broker). */
  PEER_MISMATCH: 6,
} as const;
export type ProtoErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const U64_MAX = 0xffff_ffff_ffff_ffffn;

export interface Frame {
  readonly type: number;
  readonly seq: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly c: bigint;
  readonly d: bigint;
}

export function frame(type: number, seq: bigint, a = 0n, b = 0n, c = 0n, d = 0n): Frame {
  return { type, seq, a, b, c, d };
}

export function encodeFrame(f: Frame): Buffer {
  const buf = Buffer.alloc(FRAME_SIZE); // reserved fields stay zero
  buf.writeUInt32LE(PROTO_MAGIC, 0);
  buf.writeUInt16LE(PROTO_VERSION, 4);
  buf.writeUInt16LE(f.type, 6);
  buf.writeBigUInt64LE(BigInt.asUintN(64, f.seq), 8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, f.a), 16);
  buf.writeBigUInt64LE(BigInt.asUintN(64, f.b), 24);
  buf.writeBigUInt64LE(BigInt.asUintN(64, f.c), 32);
  buf.writeBigUInt64LE(BigInt.asUintN(64, f.d), 40);
  return buf;
}

export type DecodeResult =
  | { readonly ok: true; readonly frame: Frame }
  | { readonly ok: false; readonly code: ProtoErrorCode; readonly reason: string };

function typeName(t: number): string {
  for (const [k, v] of Object.entries(MsgType)) if (v === t) return k;
  return `type ${t}`;
}

export { typeName as msgTypeName };

/** Validates one 64-byte frame: magic, version, a known type, zero reserved fields. */
export function decodeFrame(buf: Uint8Array): DecodeResult {
  if (buf.length !== FRAME_SIZE) {
    return {
      ok: false,
      code: ErrorCode.BAD_VALUE,
      reason: `frame of ${buf.length} bytes, expected ${FRAME_SIZE}`,
    };
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = b.readUInt32LE(0);
  if (magic !== PROTO_MAGIC) {
    return {
      ok: false,
      code: ErrorCode.BAD_MAGIC,
      reason: `bad magic 0x${magic.toString(16).padStart(8, "0")}`,
    };
  }
  const version = b.readUInt16LE(4);
  if (version !== PROTO_VERSION) {
    return {
      ok: false,
      code: ErrorCode.BAD_VERSION,
      reason: `protocol version ${version}, this broker speaks ${PROTO_VERSION}`,
    };
  }
  const type = b.readUInt16LE(6);
  if (type < MsgType.HELLO || type > MsgType.ERROR) {
    return { ok: false, code: ErrorCode.BAD_TYPE, reason: `unknown message type ${type}` };
  }
  if (b.readBigUInt64LE(48) !== 0n || b.readBigUInt64LE(56) !== 0n) {
    return { ok: false, code: ErrorCode.BAD_VALUE, reason: "reserved fields are not zero" };
  }
  return {
    ok: true,
    frame: {
      type,
      seq: b.readBigUInt64LE(8),
      a: b.readBigUInt64LE(16),
      b: b.readBigUInt64LE(24),
      c: b.readBigUInt64LE(32),
      d: b.readBigUInt64LE(40),
    },
  };
}

/**
 * Splits a byte stream into 64-byte frames. The buffer never holds more than one partial frame,
 * so a peer that floods the socket costs no memory beyond what the socket itself buffers.
 */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    let off = 0;
    while (data.length - off >= FRAME_SIZE) {
      frames.push(data.subarray(off, off + FRAME_SIZE));
      off += FRAME_SIZE;
    }
    this.pending = Buffer.from(data.subarray(off));
    return frames;
  }

  get pendingBytes(): number {
    return this.pending.length;
  }
}
