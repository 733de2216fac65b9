// Model readers on the committed fixtures: architecture numbers, tensor roles and bytes, split
// GGUF, sharded safetensors, config-only models, and one-line ERR_MODEL errors for bad input.

import { closeSync, ftruncateSync, mkdtempSync, openSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GGUF_HEADER_CHUNK, parseGguf } from "../../src/models/gguf.js";
import { loadModel } from "../../src/models/load.js";
import { classifyGguf, classifyHf } from "../../src/models/roles.js";
import { parseSafetensors } from "../../src/models/safetensors.js";
import { openSource } from "../../src/models/source.js";
import { SpilloverError } from "../../src/util/errors.js";
import {
  buildGguf,
  buildSafetensors,
  MIXTRAL_CONFIG,
  TINY,
  tinyLlamaGguf,
} from "../fixtures/models/make-fixtures.js";

const FIX = join(import.meta.dirname, "../fixtures/models");
const sum = (xs: readonly { bytes: number }[]) => xs.reduce((a, t) => a + t.bytes, 0);

async function modelErr(p: Promise<unknown>): Promise<SpilloverError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SpilloverError);
  const se = e as SpilloverError;
  expect(se.code).toBe("ERR_MODEL");
  expect(se.message).not.toContain("\n");
  return se;
}

describe("GGUF reader", () => {
  it("reads the tiny llama: architecture, roles and exact bytes", async () => {
    const m = await loadModel(join(FIX, "tiny-llama.gguf"));
    expect(m.format).toBe("gguf");
    expect(m.name).toBe("tiny-llama");
    expect(m.arch).toMatchObject({
      architecture: "llama",
      layers: 2,
      hidden: 32,
      heads: 4,
      headDim: 8,
      vocab: 64,
      ffnHidden: 64,
      experts: 0,
    });
    expect(m.arch.kvHeads).toEqual([2, 2]);
    const q = m.tensors.find((t) => t.name === "blk.1.attn_q.weight");
    expect(q).toMatchObject({
      layer: 1,
      role: "attention",
      elements: 32 * 32,
      bytes: (32 * 32 * 34) / 32,
      dtype: "Q8_0",
    });
    const gate = m.tensors.find((t) => t.name === "blk.0.ffn_gate.weight");
    expect(gate).toMatchObject({ role: "ffn", bytes: 32 * 64 * 2, dtype: "F16" });
    expect(m.tensors.find((t) => t.name === "output.weight")?.role).toBe("output");
    expect(m.tensors.find((t) => t.name === "token_embd.weight")?.role).toBe("embedding");
    // Per-layer bytes: attention 4 Q8_0 matrices (2 of 32x32, 2 of 32x16), ffn 2 F16 + 1 Q8_0, 2 F32 norms.
    const l0 = m.tensors.filter((t) => t.layer === 0);
    expect(sum(l0.filter((t) => t.role === "attention"))).toBe(
      ((2 * 32 * 32 + 2 * 32 * 16) * 34) / 32,
    );
    expect(sum(l0.filter((t) => t.role === "ffn"))).toBe(2 * 32 * 64 * 2 + (64 * 32 * 34) / 32);
    expect(sum(l0.filter((t) => t.role === "norm"))).toBe(2 * 32 * 4);
  });

  it("reads every part of a split model given any part", async () => {
    const a = await loadModel(join(FIX, "tiny-moe-00001-of-00002.gguf"));
    const b = await loadModel(join(FIX, "tiny-moe-00002-of-00002.gguf"));
    expect(a.tensors.length).toBe(b.tensors.length);
    expect(a.tensors.length).toBe(1 + 2 * 13 + 2);
    expect(a.arch).toMatchObject({
      architecture: "qwen2moe",
      experts: 4,
      expertsUsed: 2,
      expertFfnHidden: 32,
    });
    const roles = new Set(a.tensors.map((t) => t.role));
    for (const r of ["experts", "shared_experts", "router", "attention", "embedding", "output"])
      expect(roles).toContain(r);
    const exps = a.tensors.filter((t) => t.role === "experts" && t.layer === 1);
    expect(sum(exps)).toBe((3 * 32 * 32 * 4 * 34) / 32);
  });

  it("names the missing part of a split model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-gguf-"));
    writeFileSync(join(dir, "m-00001-of-00003.gguf"), tinyLlamaGguf().bytes);
    const e = await modelErr(loadModel(join(dir, "m-00001-of-00003.gguf")));
    expect(e.message).toContain("m-00002-of-00003.gguf");
    expect(e.message).toContain("missing part 2 of 3");
  });

  it("reports a file cut inside the weights as truncated without reading them", async () => {
    const { bytes } = tinyLlamaGguf();
    const dir = mkdtempSync(join(tmpdir(), "spill-gguf-"));
    const p = join(dir, "cut.gguf");
    writeFileSync(p, bytes.subarray(0, bytes.length - 100));
    const e = await modelErr(loadModel(p));
    expect(e.message).toMatch(
      /^.*cut\.gguf: truncated: tensor output\.weight ends at byte \d+ but the file has \d+$/,
    );
  });

  it("refuses unknown architectures and missing metadata in one line", async () => {
    const mamba = buildGguf([{ key: "general.architecture", type: "str", value: "mamba" }], []);
    const dir = mkdtempSync(join(tmpdir(), "spill-gguf-"));
    writeFileSync(join(dir, "mamba.gguf"), mamba.bytes);
    expect((await modelErr(loadModel(join(dir, "mamba.gguf")))).message).toContain(
      'unsupported architecture "mamba"',
    );
    const noLayers = buildGguf([{ key: "general.architecture", type: "str", value: "llama" }], []);
    writeFileSync(join(dir, "nolayers.gguf"), noLayers.bytes);
    expect((await modelErr(loadModel(join(dir, "nolayers.gguf")))).message).toContain(
      "llama.block_count",
    );
  });

  it("reads only the header of a huge sparse file", async () => {
    // One 8 GiB F16 tensor; the file is sparse, so this costs no disk.
    const { bytes, dataOffset, dataLength } = buildGguf(
      [
        { key: "general.architecture", type: "str", value: "llama" },
        {
          key: "tokenizer.ggml.tokens",
          type: "str[]",
          value: Array.from({ length: 5000 }, (_, i) => `token-${i}`),
        },
      ],
      [{ name: "blk.0.ffn_up.weight", shape: [4096, 1 << 20], type: 1 }],
      32,
      true,
    );
    expect(dataLength).toBe(8 * 2 ** 30);
    const dir = mkdtempSync(join(tmpdir(), "spill-gguf-"));
    const p = join(dir, "huge.gguf");
    const fd = openSync(p, "w");
    writeSync(fd, bytes);
    ftruncateSync(fd, dataOffset + dataLength);
    closeSync(fd);
    const src = await openSource(p);
    try {
      const g = await parseGguf(src);
      expect(g.tensors[0]?.bytes).toBe(dataLength);
      expect(g.dataOffset).toBe(dataOffset);
      // At most one read-ahead chunk past the header, never the 8 GiB of weights.
      expect(src.maxEnd).toBeLessThanOrEqual(dataOffset + GGUF_HEADER_CHUNK);
      expect(src.bytesRead).toBeLessThanOrEqual(dataOffset + GGUF_HEADER_CHUNK);
    } finally {
      await src.close();
    }
  });
});

describe("safetensors reader", () => {
  it("reads a sharded directory with index and config", async () => {
    const m = await loadModel(join(FIX, "tiny-llama-st"));
    expect(m.format).toBe("safetensors");
    expect(m.arch).toMatchObject({
      architecture: "llama",
      layers: TINY.layers,
      hidden: TINY.hidden,
      vocab: TINY.vocab,
    });
    expect(m.tensors).toHaveLength(21);
    expect(m.tensors.find((t) => t.name === "model.layers.1.mlp.down_proj.weight")).toMatchObject({
      layer: 1,
      role: "ffn",
      bytes: 32 * 64 * 2,
      dtype: "BF16",
    });
    expect(m.tensors.find((t) => t.name === "lm_head.weight")?.role).toBe("output");
  });

  it("reads only the 8 + N header bytes of a huge sparse file", async () => {
    const header = buildSafetensors(
      [{ name: "model.layers.0.mlp.up_proj.weight", dtype: "BF16", shape: [1 << 20, 4096] }],
      {},
      true,
    );
    const dir = mkdtempSync(join(tmpdir(), "spill-st-"));
    const p = join(dir, "huge.safetensors");
    const fd = openSync(p, "w");
    writeSync(fd, header);
    ftruncateSync(fd, header.length + 8 * 2 ** 30);
    closeSync(fd);
    const src = await openSource(p);
    try {
      const st = await parseSafetensors(src);
      expect(st.tensors[0]?.bytes).toBe(8 * 2 ** 30);
      expect(src.maxEnd).toBe(header.length);
      expect(src.bytesRead).toBe(header.length);
    } finally {
      await src.close();
    }
  });

  it("needs config.json next to safetensors weights", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-st-"));
    writeFileSync(
      join(dir, "model.safetensors"),
      buildSafetensors([{ name: "x", dtype: "F32", shape: [2] }]),
    );
    const e = await modelErr(loadModel(dir));
    expect(e.message).toContain("config.json");
    expect(e.message).toContain("missing");
  });

  it("reports a truncated shard and an oversize header length", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-st-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...MIXTRAL_CONFIG }));
    const full = buildSafetensors([
      { name: "model.embed_tokens.weight", dtype: "BF16", shape: [8, 8] },
    ]);
    writeFileSync(join(dir, "model.safetensors"), full.subarray(0, full.length - 1));
    expect((await modelErr(loadModel(dir))).message).toMatch(/model\.safetensors: truncated/);
    const bad = Buffer.from(full);
    bad.writeBigUInt64LE(200_000_000n, 0);
    writeFileSync(join(dir, "model.safetensors"), bad);
    expect((await modelErr(loadModel(dir))).message).toContain("header length 200000000");
  });
});

describe("config.json without weights", () => {
  it("computes Mixtral's bytes from the architecture", async () => {
    const m = await loadModel(join(FIX, "mixtral-config"));
    expect(m.format).toBe("hf-config");
    expect(m.arch).toMatchObject({
      experts: 8,
      expertsUsed: 2,
      expertFfnHidden: 14336,
      ffnHidden: 0,
      layers: 32,
    });
    const params = m.tensors.reduce((a, t) => a + t.elements, 0);
    // Mixtral-8x7B has 46.7 B parameters (Mistral AI's model card).
    expect(params / 1e9).toBeCloseTo(46.7, 1);
    expect(sum(m.tensors)).toBe(params * 2);
  });

  it("takes --dtype over the config's torch_dtype and refuses unknown ones", async () => {
    const m = await loadModel(join(FIX, "mixtral-config"), { dtype: "f32" });
    expect(sum(m.tensors)).toBe(m.tensors.reduce((a, t) => a + t.elements, 0) * 4);
    expect(
      (await modelErr(loadModel(join(FIX, "mixtral-config"), { dtype: "f7" }))).message,
    ).toContain('unknown dtype "f7"');
  });

  it("refuses an unknown model_type and a missing field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-cfg-"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...MIXTRAL_CONFIG, model_type: "mamba" }),
    );
    expect((await modelErr(loadModel(dir))).message).toContain('unsupported architecture "mamba"');
    const { hidden_size: _, ...noHidden } = MIXTRAL_CONFIG;
    writeFileSync(join(dir, "config.json"), JSON.stringify(noHidden));
    expect((await modelErr(loadModel(dir))).message).toContain("hidden_size");
    writeFileSync(join(dir, "config.json"), "{not json");
    expect((await modelErr(loadModel(dir))).message).toContain("not valid JSON");
  });

  it("says so for a path that does not exist", async () => {
    expect((await modelErr(loadModel("/nonexistent/model.gguf"))).message).toBe(
      "/nonexistent/model.gguf: no such file or directory",
    );
  });
});

describe("tensor roles", () => {
  it("classifies llama.cpp names", () => {
    const cases: [string, number | null, string][] = [
      ["token_embd.weight", null, "embedding"],
      ["output.weight", null, "output"],
      ["output_norm.weight", null, "norm"],
      ["blk.3.attn_q.weight", 3, "attention"],
      ["blk.3.attn_sinks.weight", 3, "attention"],
      ["blk.3.attn_q_norm.weight", 3, "norm"],
      ["blk.7.ffn_up.weight", 7, "ffn"],
      ["blk.7.ffn_gate_exps.weight", 7, "experts"],
      ["blk.7.ffn_down_exps.bias", 7, "experts"],
      ["blk.7.ffn_up_shexp.weight", 7, "shared_experts"],
      ["blk.7.ffn_gate_inp.weight", 7, "router"],
      ["blk.7.exp_probs_b.bias", 7, "router"],
      ["rope_freqs.weight", null, "other"],
    ];
    for (const [name, layer, role] of cases)
      expect(classifyGguf(name), name).toEqual({ layer, role });
  });

  it("classifies Hugging Face names (Llama, Mixtral, Qwen-MoE)", () => {
    const cases: [string, number | null, string][] = [
      ["model.embed_tokens.weight", null, "embedding"],
      ["lm_head.weight", null, "output"],
      ["model.norm.weight", null, "norm"],
      ["model.layers.2.self_attn.k_proj.weight", 2, "attention"],
      ["model.layers.2.mlp.gate_proj.weight", 2, "ffn"],
      ["model.layers.2.input_layernorm.weight", 2, "norm"],
      ["model.layers.5.block_sparse_moe.experts.3.w1.weight", 5, "experts"],
      ["model.layers.5.block_sparse_moe.gate.weight", 5, "router"],
      ["model.layers.5.mlp.experts.17.down_proj.weight", 5, "experts"],
      ["model.layers.5.mlp.gate.weight", 5, "router"],
      ["model.layers.5.mlp.shared_expert.up_proj.weight", 5, "shared_experts"],
      ["model.layers.5.mlp.shared_expert_gate.weight", 5, "shared_experts"],
    ];
    for (const [name, layer, role] of cases)
      expect(classifyHf(name), name).toEqual({ layer, role });
  });
});
