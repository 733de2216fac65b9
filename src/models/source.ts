// Bounded, counted reads of a local file. Model readers go through this so that (a) a read past the
// end of the file becomes one ERR_MODEL line naming the file ("truncated") instead of zero-filled
// data, and (b) tests can prove a reader touched only the header region (bytesRead, maxEnd).

import { type FileHandle, open } from "node:fs/promises";
import { SpilloverError } from "../util/errors.js";

export interface ByteSource {
  readonly path: string;
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; throws ERR_MODEL when the file is shorter. */
  read(offset: number, length: number, what: string): Promise<Uint8Array>;
  /** Total bytes read so far, and the highest offset read (exclusive). */
  readonly bytesRead: number;
  readonly maxEnd: number;
  close(): Promise<void>;
}

/** One line, whatever a corrupt header put in the names it quotes. */
export function modelError(path: string, problem: string): SpilloverError {
  const clean = (s: string, max: number) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
    const t = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, "?");
    return t.length > max ? `${t.slice(0, max)}...` : t;
  };
  return new SpilloverError("ERR_MODEL", `${clean(path, 300)}: ${clean(problem, 400)}`);
}

/** Throws the reader's one-line error unless [offset, offset + length) lies inside the file. */
function checkRange(
  path: string,
  size: number,
  offset: number,
  length: number,
  what: string,
): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw modelError(path, `corrupt header: bad offset or length while reading ${what}`);
  }
  if (offset + length > size) {
    throw modelError(
      path,
      `truncated or corrupt: ${what} needs bytes ${offset}..${offset + length} but the file has ${size}`,
    );
  }
}

class FileSource implements ByteSource {
  bytesRead = 0;
  maxEnd = 0;
  constructor(
    readonly path: string,
    readonly size: number,
    private readonly fh: FileHandle,
  ) {}

  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    checkRange(this.path, this.size, offset, length, what);
    const buf = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw modelError(this.path, `truncated while reading ${what}`);
      done += bytesRead;
    }
    this.bytesRead += length;
    this.maxEnd = Math.max(this.maxEnd, offset + length);
    return buf;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** In-memory source, for fuzz tests and for parsing bytes already at hand. */
export class MemorySource implements ByteSource {
  bytesRead = 0;
  maxEnd = 0;
  readonly size: number;
  constructor(
    readonly path: string,
    private readonly bytes: Uint8Array,
  ) {
    this.size = bytes.length;
  }
  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    checkRange(this.path, this.size, offset, length, what);
    this.bytesRead += length;
    this.maxEnd = Math.max(this.maxEnd, offset + length);
    return this.bytes.subarray(offset, offset + length);
  }
  async close(): Promise<void> {}
}

export async function openSource(path: string): Promise<ByteSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
          ? "permission denied"
          : String(code ?? e);
    throw modelError(path, `cannot open: ${why}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw modelError(path, "not a regular file");
    return new FileSource(path, st.size, fh);
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

export async function withSource<T>(path: string, f: (s: ByteSource) => Promise<T>): Promise<T> {
  const src = await openSource(path);
  try {
    return await f(src);
  } finally {
    await src.close();
  }
}
