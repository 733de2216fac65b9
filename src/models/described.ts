// A model described by its published facts instead of a file: an HF-style architecture plus the
// average bits per weight of a quantized file (file size x 8 / parameters). Used for published
// reproductions and for `plan` on models the user does not have locally.

import {
  archFromHfConfig,
  type HfConfig,
  hfConfigSchema,
  tensorsFromHfConfig,
} from "./hf-config.js";
import type { ModelDescription } from "./types.js";

export function describeModel(
  name: string,
  config: Partial<HfConfig> & Record<string, unknown>,
  bitsPerWeight: number,
): ModelDescription {
  const c = hfConfigSchema.parse(config);
  return {
    name,
    path: name,
    format: "described",
    arch: archFromHfConfig(c),
    tensors: tensorsFromHfConfig(c, `${bitsPerWeight.toFixed(2)}bpw`, bitsPerWeight / 8),
  };
}

/** Average bits per weight of a file of `fileBytes` holding `params` parameters. */
export function bitsPerWeight(fileBytes: number, params: number): number {
  return (fileBytes * 8) / params;
}
