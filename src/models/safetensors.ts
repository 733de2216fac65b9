// safetensors header reader: 8-byte little-endian header length, then a JSON header naming each
// tensor's dtype, shape and byte range. Reads only those 8 + N bytes (N capped at 100 MB), validates
// the JSON with zod, and checks that every tensor's byte range agrees with its shape and lies inside
// the file, so a truncated file is reported without reading a single weight.

import { z } from "zod";
import { type ByteSource, modelError } from "./source.js";

/** Bits per element of each safetensors dtype (F4/F6 are packed MX formats). */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  F64: 64,
  F32: 32,
  F16: 16,
  BF16: 16,
  I64: 64,
  I32: 32,
  I16: 16,
  I8: 8,
  U64: 64,
  U32: 32,
  U16: 16,
  U8: 8,
  BOOL: 8,
  F8_E4M3: 8,
  F8_E5M2: 8,
  F8_E8M0: 8,
  F6_E2M3: 6,
  F6_E3M2: 6,
  F4: 4,
};

export const MAX_SAFETENSORS_HEADER = 100_000_000;

const tensorSchema = z.object({
  dtype: z.string(),
  shape: z
    .array(
      z
        .number()
        .int()
        .nonnegative()
        .max(2 ** 40),
    )
    .max(8),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
const headerSchema = z.record(z.string(), z.unknown());

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly elements: number;
  readonly bytes: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly headerBytes: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly SafetensorsTensor[];
  readonly fileSize: number;
}

export async function parseSafetensors(src: ByteSource): Promise<SafetensorsFile> {
  if (src.size < 8) throw modelError(src.path, `not a safetensors file: only ${src.size} bytes`);
  const lenBytes = await src.read(0, 8, "header length");
  const len = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (len < 2n || len > BigInt(MAX_SAFETENSORS_HEADER)) {
    throw modelError(
      src.path,
      `not a safetensors file: header length ${len} (expected 2..${MAX_SAFETENSORS_HEADER})`,
    );
  }
  const n = Number(len);
  if (8 + n > src.size) {
    throw modelError(src.path, `truncated: header of ${n} bytes but the file has ${src.size}`);
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(
    await src.read(8, n, "JSON header"),
  );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw modelError(src.path, "corrupt safetensors header: not valid JSON");
  }
  const top = headerSchema.safeParse(json);
  if (!top.success) throw modelError(src.path, "corrupt safetensors header: not a JSON object");
  const dataStart = 8 + n;
  const dataSize = src.size - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensor[] = [];
  for (const [name, value] of Object.entries(top.data)) {
    if (name === "__metadata__") {
      const md = z.record(z.string(), z.string()).safeParse(value);
      if (!md.success)
        throw modelError(
          src.path,
          "corrupt safetensors header: __metadata__ must map strings to strings",
        );
      metadata = md.data;
      continue;
    }
    const t = tensorSchema.safeParse(value);
    if (!t.success)
      throw modelError(
        src.path,
        `corrupt safetensors header: entry ${JSON.stringify(name)} is not a tensor`,
      );
    const bits = SAFETENSORS_DTYPE_BITS[t.data.dtype];
    if (bits === undefined)
      throw modelError(src.path, `unknown dtype ${t.data.dtype} for tensor ${name}`);
    const elements = t.data.shape.reduce((a, b) => a * b, 1);
    const [begin, end] = t.data.data_offsets;
    const bytes = Math.ceil((elements * bits) / 8);
    if (!Number.isSafeInteger(elements) || end < begin || end - begin !== bytes) {
      throw modelError(
        src.path,
        `corrupt safetensors header: tensor ${name} has ${end - begin} bytes for shape [${t.data.shape.join(", ")}] ${t.data.dtype}`,
      );
    }
    if (end > dataSize) {
      throw modelError(
        src.path,
        `truncated: tensor ${name} ends at byte ${dataStart + end} but the file has ${src.size}`,
      );
    }
    tensors.push({ name, dtype: t.data.dtype, shape: t.data.shape, elements, bytes });
  }
  return { path: src.path, headerBytes: dataStart, metadata, tensors, fileSize: src.size };
}
