// `spillover plan` for a newcomer (through the CLI): without a hardware profile it says what the
// model needs and how to get speed predictions; --gpu alone assumes a typical host and says so;
// the model is read first (truncation before profile); a shard stands for its whole model; a
// folder with one .gguf uses it; a safetensors model's command converts it first.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const FIX = "test/fixtures/models";
const ST = `${FIX}/tiny-llama-st`;

function dir(): string {
  return mkdtempSync(join(tmpdir(), "spill-plan-cli-"));
}

describe("spillover plan without a hardware profile", () => {
  it("the README's line prints what the model needs and how to get speeds, exit 0", async () => {
    const r = await runCli(["plan", `${FIX}/tiny-llama.gguf`, "--prompt", "2048", "--gen", "256"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^model {4}tiny-llama \(llama, 2 layers\): [\d.]+KiB of weights/m);
    expect(r.out).toMatch(/^roles {4}attention [\d.]+KiB, ffn [\d.]+KiB, embedding/m);
    expect(r.out).toMatch(/KV cache 128B per token \(f16\)/);
    expect(r.out).toMatch(
      /context 2304: KV cache 288KiB, activations ~[\d.]+KiB \(micro-batch 512\)/,
    );
    for (const s of ["all in VRAM", "spillover", "layer split", "spillover streaming"])
      expect(r.out).toMatch(new RegExp(`^ {2}${s} +`, "m"));
    expect(r.out).not.toContain("MoE experts on CPU"); // a dense model
    expect(r.out.trim().split("\n").at(-1)).toMatch(
      /^speed: no hardware profile here; run `spillover bench hw` .* --gpu NAME/,
    );
  });

  it("--json carries the same facts", async () => {
    const r = await runCli(["plan", `${FIX}/tiny-moe-00001-of-00002.gguf`, "--json"]);
    expect(r.code).toBe(0);
    const n = JSON.parse(r.out);
    expect(n.schema).toBe("spillover-needs/1");
    expect(n.model.kvBytesPerToken).toBeGreaterThan(0);
    expect(n.strategies.map((s: { name: string }) => s.name)).toContain("MoE experts on CPU");
  });

  it("--gpu 4090 alone plans with a typical host, labelled as assumed", async () => {
    const r = await runCli(["plan", `${FIX}/tiny-llama.gguf`, "--gpu", "4090"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    const m = lines.findIndex((l) => l.startsWith("machine  RTX 4090"));
    expect(m).toBeGreaterThan(0);
    expect(lines[m + 1]).toBe(
      "assumed  host RAM and threads: a typical desktop: dual-channel DDR5-5600, 8 CPU threads; pass --ram-bw and --cpu-threads, or run `spillover bench hw` on the machine",
    );
    expect(r.out).toMatch(/^winner {3}/m);
  });

  it("a truncated model is reported as truncated, not as a missing profile", async () => {
    const d = dir();
    const whole = readFileSync(`${FIX}/tiny-llama.gguf`);
    writeFileSync(join(d, "cut.gguf"), whole.subarray(0, 200));
    const r = await runCli(["plan", join(d, "cut.gguf")]);
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^spillover: .*cut\.gguf: truncated/);
  });
});

describe("what spillover plan reads", () => {
  it("a single shard reads all its sibling shards and says so", async () => {
    const r = await runCli(["plan", `${ST}/model-00001-of-00002.safetensors`]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toBe(
      "note     read all 2 shards (model-00001-of-00002.safetensors .. model-00002-of-00002.safetensors): one shard is not the model",
    );
    const whole = await runCli(["plan", ST, "--json"]);
    const shard = await runCli(["plan", `${ST}/model-00002-of-00002.safetensors`, "--json"]);
    expect(JSON.parse(shard.out).model.weightBytes).toBe(JSON.parse(whole.out).model.weightBytes);
  });

  it("a shard whose siblings are missing fails with one line naming them", async () => {
    const d = dir();
    copyFileSync(`${ST}/config.json`, join(d, "config.json"));
    copyFileSync(
      `${ST}/model-00001-of-00002.safetensors`,
      join(d, "model-00001-of-00002.safetensors"),
    );
    const r = await runCli(["plan", join(d, "model-00001-of-00002.safetensors")]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^spillover: .*model-00001-of-00002\.safetensors: is shard 1 of 2, but model-00002-of-00002\.safetensors is not beside it; plan needs every shard of the model\n$/,
    );
  });

  it("a folder with exactly one .gguf (split parts count once) uses it; with two, names them", async () => {
    const one = dir();
    copyFileSync(`${FIX}/tiny-llama.gguf`, join(one, "tiny-llama.gguf"));
    const r = await runCli(["plan", one]);
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toMatch(/^note {5}read tiny-llama\.gguf, the only GGUF model in /);
    const split = dir();
    for (const p of ["tiny-moe-00001-of-00002.gguf", "tiny-moe-00002-of-00002.gguf"])
      copyFileSync(`${FIX}/${p}`, join(split, p));
    expect((await runCli(["plan", split])).code).toBe(0);
    copyFileSync(`${FIX}/tiny-llama.gguf`, join(split, "tiny-llama.gguf"));
    const two = await runCli(["plan", split]);
    expect(two.code).toBe(1);
    expect(two.err).toMatch(
      /: 2 GGUF models here \(tiny-llama\.gguf, tiny-moe-00001-of-00002\.gguf\); name the one to plan for\n$/,
    );
  });

  it("a safetensors model: the note and the command say to convert it to GGUF first", async () => {
    const needs = await runCli(["plan", ST]);
    expect(needs.out).toMatch(
      /^note {5}llama\.cpp runs GGUF files: convert this safetensors model first \(python3 convert_hf_to_gguf\.py test\/fixtures\/models\/tiny-llama-st --outfile MODEL\.gguf\)$/m,
    );
    const r = await runCli(["plan", ST, "--gpu", "3060", "--ram-bw", "60"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^command {2}python3 convert_hf_to_gguf\.py test\/fixtures\/models\/tiny-llama-st --outfile MODEL\.gguf && llama-server -m MODEL\.gguf /m,
    );
  });

  it("no output points at a design document outside the repository", async () => {
    for (const argv of [
      ["plan", `${FIX}/tiny-moe-00001-of-00002.gguf`, "--gpu", "3060", "--vram", "1M"],
      ["plan", `${FIX}/tiny-moe-00001-of-00002.gguf`],
    ]) {
      const r = await runCli(argv);
      expect(r.out + r.err).not.toMatch(/design\.md|\.\.\/shared/);
    }
    // The repository stands alone: its docs describe the design themselves.
    for (const f of ["README.md", "docs/architecture.md", "docs/plan.md", "docs/interposer.md"])
      expect(readFileSync(f, "utf8"), f).not.toMatch(/design\.md|\.\.\/shared/);
    expect(readFileSync("docs/architecture.md", "utf8")).toMatch(/## Invariants/);
  });
});
