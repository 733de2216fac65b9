// Entry point of the model readers: a path (GGUF file or split part, safetensors file, a model
// directory with config.json and optional safetensors shards, or a config.json alone) -> a
// ModelDescription. Local files only; headers only.

import { readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { describeGguf } from "./from-gguf.js";
import { readGgufModel } from "./gguf.js";
import {
  archFromHfConfig,
  DTYPE_BYTES,
  type HfConfig,
  parseHfConfig,
  tensorsFromHfConfig,
} from "./hf-config.js";
import { classifyHf } from "./roles.js";
import { parseSafetensors } from "./safetensors.js";
import { modelError, withSource } from "./source.js";
import type { ModelDescription, TensorEntry } from "./types.js";

export interface LoadOptions {
  /** Weight dtype for a config.json without weights (bf16, f16, f32, fp8, q8_0, q4_k, ...). */
  readonly dtype?: string;
}

async function kind(path: string): Promise<"file" | "dir" | "missing"> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : "file";
  } catch {
    return "missing";
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    const s = await stat(path);
    if (s.size > 100_000_000) throw modelError(path, "too large for a JSON config");
    text = await readFile(path, "utf8");
  } catch (e) {
    if (e instanceof Error && e.name === "SpilloverError") throw e;
    throw modelError(path, "missing (a safetensors model needs its Hugging Face config.json)");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw modelError(path, "not valid JSON");
  }
}

const indexSchema = z.object({ weight_map: z.record(z.string(), z.string()) });

export async function loadModel(path: string, opts: LoadOptions = {}): Promise<ModelDescription> {
  const k = await kind(path);
  if (k === "missing") throw modelError(path, "no such file or directory");
  if (k === "dir") return loadDirectory(path, opts);
  const name = basename(path);
  if (name.endsWith(".gguf")) {
    const { files } = await readGgufModel(path);
    return describeGguf(files, path);
  }
  if (name.endsWith(".safetensors")) return loadSafetensorsFile(path);
  if (name.endsWith(".json")) {
    const raw = await readJson(path);
    if (raw && typeof raw === "object" && "weight_map" in raw)
      return loadDirectory(dirname(path), opts);
    return fromConfigOnly(path, parseHfConfig(path, raw), opts);
  }
  // No telling extension: sniff the GGUF magic.
  const magic = await withSource(path, (s) => s.read(0, Math.min(4, s.size), "magic"));
  if (new TextDecoder().decode(magic) === "GGUF") {
    const { files } = await readGgufModel(path);
    return describeGguf(files, path);
  }
  throw modelError(
    path,
    "unknown model format (expected a .gguf file, a .safetensors file, or a directory with config.json)",
  );
}

async function loadDirectory(dir: string, opts: LoadOptions): Promise<ModelDescription> {
  const configPath = join(dir, "config.json");
  const indexPath = join(dir, "model.safetensors.index.json");
  if ((await kind(indexPath)) === "file") {
    const idx = indexSchema.safeParse(await readJson(indexPath));
    if (!idx.success)
      throw modelError(indexPath, 'invalid index: expected {"weight_map": {tensor: file}}');
    const files = [...new Set(Object.values(idx.data.weight_map))].sort();
    for (const f of files) {
      if (f.includes("/") || f.includes(".."))
        throw modelError(indexPath, `weight_map names a file outside the model directory: ${f}`);
    }
    return loadSafetensors(
      dir,
      files.map((f) => join(dir, f)),
      configPath,
    );
  }
  if ((await kind(join(dir, "model.safetensors"))) === "file") {
    return loadSafetensors(dir, [join(dir, "model.safetensors")], configPath);
  }
  const gguf = await onlyGguf(dir);
  if (gguf) {
    const { files } = await readGgufModel(gguf);
    const m = describeGguf(files, gguf);
    return { ...m, notes: [`read ${basename(gguf)}, the only GGUF model in ${dir}`] };
  }
  if ((await kind(configPath)) === "file")
    return fromConfigOnly(configPath, parseHfConfig(configPath, await readJson(configPath)), opts);
  throw modelError(
    dir,
    "no model here (expected config.json, model.safetensors(.index.json) or a .gguf file)",
  );
}

/** The GGUF model of a directory when there is exactly one (a split model counts once, by its
 *  first part); undefined when there is none; an error naming them when there are several. */
async function onlyGguf(dir: string): Promise<string | undefined> {
  const names = (await readdir(dir)).filter((n) => n.toLowerCase().endsWith(".gguf"));
  const models = names.filter((n) => {
    const part = /-(\d{5})-of-\d{5}\.gguf$/i.exec(n);
    return part === null || Number(part[1]) === 1;
  });
  if (models.length === 0) return undefined;
  if (models.length > 1) {
    throw modelError(
      dir,
      `${models.length} GGUF models here (${models.sort().join(", ")}); name the one to plan for`,
    );
  }
  return join(dir, models[0] as string);
}

const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.safetensors$/;

/** One .safetensors file; a shard ("model-00001-of-00003.safetensors") stands for its whole model:
 *  all of its siblings are read (and the plan says so), or one line names the first missing one. */
async function loadSafetensorsFile(path: string): Promise<ModelDescription> {
  const dir = dirname(path);
  const configPath = join(dir, "config.json");
  const m = SHARD.exec(basename(path));
  if (!m) return loadSafetensors(dir, [path], configPath);
  const [, prefix, nText, ofText] = m as unknown as [string, string, string, string];
  const of = Number(ofText);
  const shards = Array.from(
    { length: of },
    (_, i) => `${prefix}-${String(i + 1).padStart(5, "0")}-of-${ofText}.safetensors`,
  );
  const missing: string[] = [];
  for (const s of shards) if ((await kind(join(dir, s))) !== "file") missing.push(s);
  if (missing.length > 0) {
    const named =
      missing.slice(0, 3).join(", ") +
      (missing.length > 3 ? ` and ${missing.length - 3} more` : "");
    throw modelError(
      path,
      `is shard ${Number(nText)} of ${of}, but ${named} ${missing.length === 1 ? "is" : "are"} not beside it; plan needs every shard of the model`,
    );
  }
  const model = await loadSafetensors(
    dir,
    shards.map((s) => join(dir, s)),
    configPath,
  );
  return {
    ...model,
    notes: [
      `read all ${of} shards (${shards[0]} .. ${shards[of - 1]}): one shard is not the model`,
    ],
  };
}

async function loadSafetensors(
  dir: string,
  files: string[],
  configPath: string,
): Promise<ModelDescription> {
  const config = parseHfConfig(configPath, await readJson(configPath));
  const arch = archFromHfConfig(config);
  const tensors: TensorEntry[] = [];
  for (const f of files) {
    if ((await kind(f)) !== "file")
      throw modelError(f, "missing safetensors shard named by the index");
    const st = await withSource(f, parseSafetensors);
    for (const t of st.tensors) {
      const c = classifyHf(t.name);
      if (c.layer !== null && c.layer >= arch.layers) {
        throw modelError(
          f,
          `tensor ${t.name} names layer ${c.layer} but config.json has ${arch.layers} layers`,
        );
      }
      tensors.push({
        name: t.name,
        layer: c.layer,
        role: c.role,
        elements: t.elements,
        bytes: t.bytes,
        dtype: t.dtype,
      });
    }
  }
  if (tensors.length === 0)
    throw modelError(files[0] ?? dir, "no tensors in the safetensors header");
  return { name: basename(dir), path: dir, format: "safetensors", arch, tensors };
}

function fromConfigOnly(configPath: string, config: HfConfig, opts: LoadOptions): ModelDescription {
  const dtype = (opts.dtype ?? config.torch_dtype ?? config.dtype ?? "").toLowerCase();
  const bpe = DTYPE_BYTES[dtype];
  if (bpe === undefined) {
    throw modelError(
      configPath,
      dtype
        ? `unknown dtype "${dtype}" (use --dtype ${Object.keys(DTYPE_BYTES).join("|")})`
        : "no weights and no dtype: pass --dtype bf16 (or f16, f32, fp8, q8_0, q4_k)",
    );
  }
  return {
    name: basename(dirname(configPath)) || configPath,
    path: configPath,
    format: "hf-config",
    arch: archFromHfConfig(config),
    tensors: tensorsFromHfConfig(config, dtype, bpe),
  };
}
