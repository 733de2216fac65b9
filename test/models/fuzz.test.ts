// Fuzzing both readers: random bytes, every truncation of a valid fixture, mutated lengths and
// random byte flips. A reader may succeed or fail, but it fails only with a one-line ERR_MODEL,
// and it never reads past the header region.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GGUF_HEADER_CHUNK, parseGguf } from "../../src/models/gguf.js";
import { parseSafetensors } from "../../src/models/safetensors.js";
import { MemorySource } from "../../src/models/source.js";
import { SpilloverError } from "../../src/util/errors.js";
import {
  buildSafetensors,
  tinyLlamaGguf,
  tinyMoeGgufParts,
} from "../fixtures/models/make-fixtures.js";

type Parser = (s: MemorySource) => Promise<unknown>;

/** Runs `parse`; returns "ok" or "err", and fails the test on anything but a one-line ERR_MODEL. */
async function outcome(parse: Parser, bytes: Uint8Array, readLimit: number): Promise<"ok" | "err"> {
  const src = new MemorySource("fuzz.bin", bytes);
  try {
    await parse(src);
    return "ok";
  } catch (e) {
    if (!(e instanceof SpilloverError) || e.code !== "ERR_MODEL" || e.message.includes("\n")) {
      throw new Error(`reader threw something other than a one-line ERR_MODEL: ${String(e)}`);
    }
    return "err";
  } finally {
    expect(src.maxEnd).toBeLessThanOrEqual(readLimit);
  }
}

const gguf = tinyLlamaGguf();
const moePart = tinyMoeGgufParts()[1];
const st = buildSafetensors(
  [
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [64, 32] },
    { name: "model.layers.0.self_attn.q_proj.weight", dtype: "F16", shape: [32, 32] },
    { name: "model.norm.weight", dtype: "F32", shape: [32] },
  ],
  { format: "pt" },
);
const stHeader = 8 + Number(st.readBigUInt64LE(0));

describe("GGUF reader fuzz", () => {
  it("fails cleanly on every truncation of a valid file", async () => {
    for (const g of [gguf, moePart]) {
      if (!g) throw new Error("fixture missing");
      // Every offset of the MoE part; for the llama (600-token vocabulary) every offset of the
      // header and every 7th of the weights, which only the tensor-end check sees.
      const step = (cut: number) => (g === gguf && cut > g.dataOffset ? 7 : 1);
      for (let cut = 0; cut < g.bytes.length; cut += step(cut)) {
        const r = await outcome(
          parseGguf,
          g.bytes.subarray(0, cut),
          g.dataOffset + GGUF_HEADER_CHUNK,
        );
        expect(r).toBe("err");
      }
      expect(await outcome(parseGguf, g.bytes, g.dataOffset + GGUF_HEADER_CHUNK)).toBe("ok");
    }
  });

  it("never throws anything but ERR_MODEL on random bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (bytes) => {
        await outcome(parseGguf, bytes, Math.max(bytes.length, 0));
      }),
      { numRuns: 500 },
    );
  });

  it("never throws anything but ERR_MODEL on random GGUF-prefixed bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (tail) => {
        const head = Buffer.from([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]);
        const bytes = Buffer.concat([head, Buffer.from(tail)]);
        await outcome(parseGguf, bytes, bytes.length);
      }),
      { numRuns: 500 },
    );
  });

  it("survives mutated counts, lengths and random byte flips in the header", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: gguf.dataOffset - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        async (flips) => {
          const bytes = Buffer.from(gguf.bytes);
          for (const [at, v] of flips) bytes[at] = v;
          await outcome(parseGguf, bytes, bytes.length);
        },
      ),
      { numRuns: 1000 },
    );
    // Counts and string lengths set to huge values: refused without allocating them.
    for (const at of [8, 16, 24]) {
      const bytes = Buffer.from(gguf.bytes);
      bytes.writeBigUInt64LE(0xffff_ffff_ffffn, at);
      expect(await outcome(parseGguf, bytes, bytes.length)).toBe("err");
    }
  });
});

describe("safetensors reader fuzz", () => {
  it("fails cleanly on every truncation of a valid file", async () => {
    for (let cut = 0; cut < st.length; cut++) {
      expect(await outcome(parseSafetensors, st.subarray(0, cut), stHeader)).toBe("err");
    }
    expect(await outcome(parseSafetensors, st, stHeader)).toBe("ok");
  });

  it("never throws anything but ERR_MODEL on random bytes and random JSON headers", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
        await outcome(parseSafetensors, bytes, bytes.length);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.nat({ max: 4096 }), async (json, pad) => {
        const text = Buffer.from(JSON.stringify(json) ?? "null");
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(text.length));
        const bytes = Buffer.concat([len, text, Buffer.alloc(pad)]);
        await outcome(parseSafetensors, bytes, 8 + text.length);
      }),
      { numRuns: 500 },
    );
  });

  it("survives mutated header lengths and byte flips", async () => {
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), async (len) => {
        const bytes = Buffer.from(st);
        bytes.writeBigUInt64LE(len, 0);
        const limit = len <= BigInt(bytes.length) ? Number(len) + 8 : 8;
        await outcome(parseSafetensors, bytes, limit);
      }),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: stHeader - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        async (flips) => {
          const bytes = Buffer.from(st);
          for (const [at, v] of flips) bytes[at] = v;
          const len = bytes.readBigUInt64LE(0);
          const limit = len <= BigInt(bytes.length) ? Number(len) + 8 : 8;
          await outcome(parseSafetensors, bytes, limit);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
