// Frame encode/decode and the stream splitter, including properties over arbitrary bytes.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeFrame,
  ErrorCode,
  encodeFrame,
  FRAME_SIZE,
  FrameSplitter,
  frame,
  MsgType,
} from "../../src/protocol/frame.js";
import { decodeStats, STATS_SIZE } from "../../src/protocol/stats.js";

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

describe("frames", () => {
  it("round-trips every field of every message type", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        u64,
        u64,
        u64,
        u64,
        u64,
        (type, seq, a, b, c, d) => {
          const f = frame(type, seq, a, b, c, d);
          expect(decodeFrame(encodeFrame(f))).toEqual({ ok: true, frame: f });
        },
      ),
    );
  });

  it("names what is wrong with a bad frame", () => {
    const good = encodeFrame(frame(MsgType.HELLO, 1n, 1n));
    const badMagic = Buffer.from(good);
    badMagic[0] = 0;
    expect(decodeFrame(badMagic)).toMatchObject({ ok: false, code: ErrorCode.BAD_MAGIC });
    const badVersion = Buffer.from(good);
    badVersion.writeUInt16LE(2, 4);
    expect(decodeFrame(badVersion)).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_VERSION,
      reason: expect.stringContaining("version 2"),
    });
    const badType = Buffer.from(good);
    badType.writeUInt16LE(99, 6);
    expect(decodeFrame(badType)).toMatchObject({ ok: false, code: ErrorCode.BAD_TYPE });
    const reserved = Buffer.from(good);
    reserved[60] = 1;
    expect(decodeFrame(reserved)).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_VALUE,
      reason: expect.stringContaining("reserved"),
    });
    expect(decodeFrame(good.subarray(0, 10))).toMatchObject({ ok: false });
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
        const r = decodeFrame(bytes);
        expect(typeof r.ok).toBe("boolean");
        expect(decodeStats(bytes).ok).toBe(false);
      }),
    );
  });

  it("splits a stream at 64-byte boundaries however it is chunked", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 700 }),
        fc.array(fc.integer({ min: 1, max: 100 }), { maxLength: 20 }),
        (bytes, cuts) => {
          const s = new FrameSplitter();
          const out: Buffer[] = [];
          let off = 0;
          for (const c of cuts) {
            out.push(...s.push(Buffer.from(bytes.subarray(off, off + c))));
            off = Math.min(bytes.length, off + c);
          }
          out.push(...s.push(Buffer.from(bytes.subarray(off))));
          expect(out.length).toBe(Math.floor(bytes.length / FRAME_SIZE));
          expect(
            Buffer.concat(out).equals(Buffer.from(bytes.subarray(0, out.length * FRAME_SIZE))),
          ).toBe(true);
          expect(s.pendingBytes).toBe(bytes.length % FRAME_SIZE);
        },
      ),
    );
  });

  it("rejects a stats record with an odd seq as busy", () => {
    const b = Buffer.alloc(STATS_SIZE);
    b.writeBigUInt64LE(0x3153544154535053n, 0);
    b.writeUInt32LE(1, 8);
    b.writeUInt32LE(STATS_SIZE, 12);
    b.writeBigUInt64LE(7n, 16);
    expect(decodeStats(b)).toMatchObject({ ok: false, busy: true });
    b.writeBigUInt64LE(8n, 16);
    expect(decodeStats(b).ok).toBe(true);
  });
});
