// Fuzz: random sequences of frames and garbage from a bad client. Whatever it sends, the broker
// answers with valid frames only, closes the connection when it errs (with a logged reason), keeps
// its books consistent, and a well-behaved client beside it keeps working.

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeFrame, FRAME_SIZE, frame, MsgType } from "../../src/protocol/frame.js";
import { GiB, MiB, RawClient, startTestBroker, type TestBroker, waitFor } from "./helpers.js";

let broker: TestBroker;
let good: RawClient;
let goodSeq = 1n;

beforeAll(async () => {
  broker = await startTestBroker({ pinned_budget: 64 * GiB, initial_grant: GiB }, { http: false });
  good = await RawClient.connect(broker.socket);
  good.send(frame(MsgType.HELLO, goodSeq, BigInt(process.pid), 1n, BigInt(GiB)));
  await good.read();
});

afterAll(async () => {
  good.close();
  await broker.close();
});

const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.constantFrom(0n, 1n, BigInt(process.pid), 2n ** 64n - 1n),
);
const validish = fc
  .record({ type: fc.integer({ min: 0, max: 12 }), seq: u64, a: u64, b: u64, c: u64, d: u64 })
  .map((f) => encodeFrame(frame(f.type, f.seq, f.a, f.b, f.c, f.d)));
const chunk = fc.oneof(
  validish,
  validish,
  fc.uint8Array({ minLength: 1, maxLength: 3 * FRAME_SIZE }).map((b) => Buffer.from(b)),
);

describe("fuzzed clients", () => {
  it("never break the broker or other clients", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(chunk, { minLength: 1, maxLength: 12 }), async (chunks) => {
        const bad = await RawClient.connect(broker.socket);
        for (const c of chunks) bad.send(c);
        // drain whatever comes back: every frame must parse (read() throws on a bad one)
        for (;;) {
          const f = await bad.read(300).catch((e: Error) => {
            if (e.message.startsWith("timed out")) return "timeout" as const;
            throw e;
          });
          if (f === undefined || f === "timeout") break;
          expect([
            MsgType.WELCOME,
            MsgType.VRAM_GRANT,
            MsgType.PINNED_GRANT,
            MsgType.LEASE_UPDATE,
            MsgType.ERROR,
          ]).toContain(f.type);
        }
        bad.close();
        await waitFor(
          () => broker.handle.book.list().length,
          (n) => n === 1,
          2000,
        );
        expect(broker.handle.book.list().length).toBe(1);
        expect(broker.handle.book.leased).toBe(broker.handle.book.list()[0]?.pinned);
        goodSeq++;
        good.send(frame(MsgType.PINNED_GROW, goodSeq, BigInt(MiB)));
        const g = await good.read();
        expect(g).toMatchObject({ type: MsgType.PINNED_GRANT, seq: goodSeq, a: BigInt(MiB) });
      }),
      { numRuns: 60 },
    );
    const reasons = broker.log.lines.filter((l) => l.level === "warn").map((l) => l.fields?.reason);
    expect(reasons.length).toBeGreaterThan(0);
    expect(reasons.every((r) => typeof r === "string" && r.length > 0)).toBe(true);
  });
});
