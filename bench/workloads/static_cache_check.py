"""static_cache_check.py: a few-second GPU check of llm.py's decode loop (LeanDecoder through
lean_decode, exactly as the suite times it: six prefills, graph capture, a probe run, a warm-up
run and five timed runs) against Hugging Face's own `model.generate(do_sample=False)`, on a tiny
random Llama (2 layers, hidden 256) on cuda, once without and once with a CUDA graph. Prints one
line, PASS or FAIL with what each mode gave, then any traceback; exit 0 only when both modes give
generate's tokens in every run and the graph really was captured. float32 by default: generate
decodes with a dynamic cache and no mask, so another attention kernel, which in bf16 can flip a
near-tied argmax of a random model; `--dtype bfloat16` runs the suite's dtype (a mismatch at a
near tie says so).

  python3 bench/workloads/static_cache_check.py [--tokens 24] [--prompt 40] [--dtype float32]
"""

import argparse
import sys
import traceback

import llm  # this directory is on sys.path when the script runs


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=24, help="greedy tokens to compare (default 24)")
    p.add_argument("--prompt", type=int, default=40, help="prompt length (default 40)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    a = p.parse_args()
    if a.tokens < 2 or a.prompt < 1:
        p.error("--tokens must be at least 2 and --prompt at least 1")
    return a


def tiny_llama(torch, transformers, dtype):
    # no eos: generate then always produces exactly max_new_tokens, like the loop
    config = transformers.LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=512,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=1024, bos_token_id=None, eos_token_id=None,
                                      pad_token_id=None)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(config)
    return model.to(dtype).eval(), config


def reference(torch, model, prompt, n):
    """generate's greedy tokens and, per token, the gap between its two largest logits."""
    g = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                       do_sample=False, output_logits=True, return_dict_in_generate=True)
    tokens = g.sequences[0, prompt.shape[1]:].tolist()
    gaps = []
    for step in g.logits:
        top = step[0].float().topk(2).values
        gaps.append(float(top[0] - top[1]))
    return tokens, gaps


def check_mode(torch, transformers, model, config, prompt, ref, gaps, graph):
    """(summary, passed, traceback or None) for one mode of the loop."""
    name = "cuda-graph" if graph else "static-eager"
    n = len(ref)
    try:
        _, decode, tokens = llm.lean_decode(torch, transformers, model, config, prompt, {"decode_reps": 5},
                                            graph, n_fixed=n)
    except Exception as e:  # noqa: BLE001  (reported with its traceback)
        first = str(e).splitlines()[0] if str(e) else ""
        return f"{name}: {type(e).__name__}: {first}", False, traceback.format_exc()
    problems = []
    if graph and decode["method"] != "cuda-graph":
        problems.append(f"graph capture failed ({decode['graph_error']})")
    if tokens != ref:
        i = next(k for k, (a, b) in enumerate(zip(tokens, ref)) if a != b)
        tie = ", a near tie" if gaps[i] < 1e-2 else ""
        problems.append(f"token {i} is {tokens[i]} where generate gives {ref[i]} (generate's top-2 logit gap "
                        f"there {gaps[i]:.3g}{tie}); loop {tokens} generate {ref}")
    unequal = [k for k, r in enumerate(decode["runs"]) if not r["same_tokens_as_first"]]
    if unequal:
        problems.append(f"timed runs {unequal} differ from the first")
    head = f"{name} ({decode['method']}, {len(decode['runs'])} timed runs)"
    return f"{head}: {'; '.join(problems) if problems else 'same tokens as generate'}", not problems, None


def main():
    a = parse_args()
    what = f"{a.dtype}, prompt {a.prompt}, {a.tokens} tokens"
    try:
        import torch
        import transformers

        what = f"torch {torch.__version__}, transformers {transformers.__version__}, {what}"
        if not torch.cuda.is_available():
            print(f"FAIL static-cache check ({what}): no CUDA device; run it on the GPU machine")
            return 1
        model, config = tiny_llama(torch, transformers, getattr(torch, a.dtype))
        gen = torch.Generator().manual_seed(1)
        prompt = torch.randint(3, config.vocab_size, (1, a.prompt), generator=gen).to("cuda")
        with torch.inference_mode():
            ref, gaps = reference(torch, model, prompt, a.tokens)
            results = [check_mode(torch, transformers, model, config, prompt, ref, gaps, g) for g in (False, True)]
    except Exception as e:  # noqa: BLE001  (setup or generate failed: one line, then the traceback)
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"FAIL static-cache check ({what}): {type(e).__name__}: {first}")
        traceback.print_exc()
        return 1
    ok = all(passed for _, passed, _ in results)
    print(f"{'PASS' if ok else 'FAIL'} static-cache check ({what}): " + " | ".join(line for line, _, _ in results))
    for _, _, tb in results:
        if tb:
            print(tb, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
