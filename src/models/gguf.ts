// GGUF header reader for local files (single file or -0000K-of-0000N split parts). Reads only the
// header (metadata + tensor directory), chunk by chunk, never the tensor data; big metadata arrays
// (the tokenizer) are skipped and only their length kept.
//
// Why not @huggingface/gguf: its local-file path zero-fills past the end of the file (a truncated
// file parses as if padded), reads in fixed 2 MB chunks, and throws plain Errors; a planner must
// say "truncated" in one line instead.

import { readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GGML_TYPES } from "./ggml-types.js";
import { type ByteSource, modelError, openSource } from "./source.js";

export type GgufValue = number | bigint | boolean | string | GgufArray;
/** Arrays longer than ARRAY_KEEP keep only their length (tokenizer vocabularies). */
export interface GgufArray {
  readonly kind: "array";
  readonly length: number;
  readonly values?: readonly GgufValue[];
}

export interface GgufTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: number;
  readonly typeName: string;
  readonly elements: number;
  readonly bytes: number;
  /** Offset from the start of the data section. */
  readonly offset: number;
}

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensor[];
  readonly dataOffset: number;
  readonly fileSize: number;
}

const MAGIC = 0x46554747; // "GGUF" read as little-endian u32
const CHUNK = 1 << 20;
const MAX_TENSORS = 1_000_000;
const MAX_KV = 1_000_000;
const MAX_STRING = 64 * 1024 * 1024;
const MAX_ARRAY = 100_000_000;
const MAX_DEPTH = 4;
const MAX_DIMS = 8;
const ARRAY_KEEP = 512;
export const GGUF_HEADER_CHUNK = CHUNK;

/** Sequential reader over a ByteSource, buffering CHUNK bytes at a time. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private bufStart = 0;
  constructor(private readonly src: ByteSource) {}

  private async ensure(n: number, what: string): Promise<number> {
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    const want = Math.max(n, CHUNK);
    const len = Math.min(want, this.src.size - this.pos);
    // A short read past the end: let the source produce its "truncated" error.
    const bytes = await this.src.read(this.pos, Math.max(len, n), what);
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.bufStart = this.pos;
    return 0;
  }

  async u32(what: string): Promise<number> {
    const o = await this.ensure(4, what);
    this.pos += 4;
    return this.view.getUint32(o, true);
  }
  async u64(what: string): Promise<bigint> {
    const o = await this.ensure(8, what);
    this.pos += 8;
    return this.view.getBigUint64(o, true);
  }
  /** A u64 that must fit a safe integer and stay <= max. */
  async count(what: string, max: number): Promise<number> {
    const v = await this.u64(what);
    if (v > BigInt(max))
      throw modelError(this.src.path, `corrupt header: ${what} is ${v} (at most ${max})`);
    return Number(v);
  }
  async scalar(type: number, what: string): Promise<number | bigint | boolean> {
    const size = SCALAR_SIZE[type];
    if (size === undefined)
      throw modelError(this.src.path, `corrupt header: unknown value type ${type} in ${what}`);
    const o = await this.ensure(size, what);
    this.pos += size;
    const v = this.view;
    switch (type) {
      case 0:
        return v.getUint8(o);
      case 1:
        return v.getInt8(o);
      case 2:
        return v.getUint16(o, true);
      case 3:
        return v.getInt16(o, true);
      case 4:
        return v.getUint32(o, true);
      case 5:
        return v.getInt32(o, true);
      case 6:
        return v.getFloat32(o, true);
      case 7:
        return v.getUint8(o) !== 0;
      case 10:
        return v.getBigUint64(o, true);
      case 11:
        return v.getBigInt64(o, true);
      default:
        return v.getFloat64(o, true);
    }
  }
  async string(what: string): Promise<string> {
    const n = await this.count(`${what} length`, MAX_STRING);
    if (n === 0) return "";
    const o = await this.ensure(n, what);
    this.pos += n;
    return DECODER.decode(this.buf.subarray(o, o + n));
  }
  async skipString(what: string): Promise<void> {
    const n = await this.count(`${what} length`, MAX_STRING);
    this.skip(n, what);
  }
  skip(n: number, what: string): void {
    if (this.pos + n > this.src.size) {
      throw modelError(
        this.src.path,
        `truncated or corrupt: ${what} runs past the end of the file`,
      );
    }
    this.pos += n;
  }
}

const DECODER = new TextDecoder("utf-8", { fatal: false });
const SCALAR_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const TYPE_STRING = 8;
const TYPE_ARRAY = 9;

async function readValue(c: Cursor, type: number, what: string, depth: number): Promise<GgufValue> {
  if (type === TYPE_STRING) return c.string(what);
  if (type !== TYPE_ARRAY) return c.scalar(type, what);
  if (depth >= MAX_DEPTH)
    throw modelError(pathOf(c), `corrupt header: ${what} nests arrays too deeply`);
  const elemType = await c.u32(`${what} element type`);
  const n = await c.count(`${what} array length`, MAX_ARRAY);
  const keep = n <= ARRAY_KEEP;
  const values: GgufValue[] = [];
  const size = SCALAR_SIZE[elemType];
  if (!keep && size !== undefined) {
    c.skip(n * size, what);
    return { kind: "array", length: n };
  }
  if (size === undefined && elemType !== TYPE_STRING && elemType !== TYPE_ARRAY) {
    throw modelError(
      pathOf(c),
      `corrupt header: unknown array element type ${elemType} in ${what}`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (!keep && elemType === TYPE_STRING) {
      await c.skipString(what);
      continue;
    }
    const v = await readValue(c, elemType, what, depth + 1);
    if (keep) values.push(v);
  }
  return keep ? { kind: "array", length: n, values } : { kind: "array", length: n };
}

const cursorPaths = new WeakMap<Cursor, string>();
function pathOf(c: Cursor): string {
  return cursorPaths.get(c) ?? "model";
}

/** Parses the header of one GGUF file from `src`. */
export async function parseGguf(src: ByteSource): Promise<GgufFile> {
  const c = new Cursor(src);
  cursorPaths.set(c, src.path);
  if (src.size < 24) throw modelError(src.path, `not a GGUF file: only ${src.size} bytes`);
  const magic = await c.u32("magic");
  if (magic !== MAGIC) throw modelError(src.path, "not a GGUF file (missing GGUF magic)");
  const version = await c.u32("version");
  if (version !== 2 && version !== 3) {
    throw modelError(
      src.path,
      `unsupported GGUF version ${version} (spillover reads versions 2 and 3)`,
    );
  }
  const nTensors = await c.count("tensor count", MAX_TENSORS);
  const nKv = await c.count("metadata count", MAX_KV);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = await c.string(`metadata key #${i}`);
    const type = await c.u32(`type of ${key}`);
    metadata.set(key, await readValue(c, type, key || `metadata #${i}`, 0));
  }
  const raw: Omit<GgufTensor, "bytes" | "elements" | "typeName">[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = await c.string(`tensor name #${i}`);
    const nDims = await c.u32(`dimensions of ${name}`);
    if (nDims > MAX_DIMS)
      throw modelError(src.path, `corrupt header: tensor ${name} has ${nDims} dimensions`);
    const shape: number[] = [];
    for (let d = 0; d < nDims; d++) shape.push(await c.count(`shape of ${name}`, 2 ** 40));
    const type = await c.u32(`type of ${name}`);
    const offset = await c.count(`offset of ${name}`, Number.MAX_SAFE_INTEGER);
    raw.push({ name, shape, type, offset });
  }
  const alignRaw = metadata.get("general.alignment") ?? 32;
  const alignment =
    typeof alignRaw === "number" || typeof alignRaw === "bigint" ? Number(alignRaw) : Number.NaN;
  if (!Number.isSafeInteger(alignment) || alignment <= 0 || alignment > 1 << 20) {
    throw modelError(src.path, `corrupt header: general.alignment is ${String(alignRaw)}`);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = raw.map((t) => finishTensor(src, t, dataOffset));
  return { path: src.path, version, metadata, tensors, dataOffset, fileSize: src.size };
}

function finishTensor(
  src: ByteSource,
  t: Omit<GgufTensor, "bytes" | "elements" | "typeName">,
  dataOffset: number,
): GgufTensor {
  const ty = GGML_TYPES[t.type];
  if (!ty)
    throw modelError(
      src.path,
      `unknown tensor type ${t.type} for ${t.name} (newer GGUF than spillover knows?)`,
    );
  const elements = t.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elements))
    throw modelError(src.path, `corrupt header: tensor ${t.name} is too large`);
  const row = t.shape[0] ?? 1;
  if (row % ty.blockSize !== 0) {
    throw modelError(
      src.path,
      `corrupt header: tensor ${t.name} row of ${row} is not a multiple of ${ty.name}'s block`,
    );
  }
  const bytes = (elements / ty.blockSize) * ty.typeSize;
  const end = dataOffset + t.offset + bytes;
  if (end > src.size) {
    throw modelError(
      src.path,
      `truncated: tensor ${t.name} ends at byte ${end} but the file has ${src.size}`,
    );
  }
  return { ...t, typeName: ty.name, elements, bytes };
}

const SHARD_RE = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

/** Reads a GGUF model: one file, or all parts of a split model given any part's path. */
export async function readGgufModel(path: string): Promise<{ files: GgufFile[]; paths: string[] }> {
  const m = SHARD_RE.exec(basename(path));
  const paths = m ? await shardPaths(path, m[1] ?? "", Number(m[3])) : [path];
  const files: GgufFile[] = [];
  for (const p of paths) {
    const src = await openSource(p);
    try {
      files.push(await parseGguf(src));
    } finally {
      await src.close();
    }
  }
  return { files, paths };
}

async function shardPaths(path: string, prefix: string, total: number): Promise<string[]> {
  if (total < 1) throw modelError(path, "split GGUF name says 0 parts");
  const dir = dirname(path);
  const present = new Set(await readdir(dir).catch(() => [] as string[]));
  const out: string[] = [];
  for (let i = 1; i <= total; i++) {
    const name = `${prefix}-${String(i).padStart(5, "0")}-of-${String(total).padStart(5, "0")}.gguf`;
    if (!present.has(name))
      throw modelError(join(dir, name), `missing part ${i} of ${total} of the split model`);
    out.push(join(dir, name));
  }
  return out;
}
