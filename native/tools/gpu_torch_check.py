# gpu_torch_check.py: PyTorch under the interposer (run by gpu_interposer.sh): reported capacity,
# a 3 GiB tensor past a 2 GiB VRAM limit, a bf16 GEMM whose weight lands in host pages (hash
# compared with the baseline run), and an 8 GiB allocation (time to place, read bandwidth).
import hashlib
import time

import torch

t0 = time.time()
free, total = torch.cuda.mem_get_info()
props = torch.cuda.get_device_properties(0)
print(f"mem_get_info free={free} total={total} totalGlobalMem={props.total_memory}")
x = torch.ones(3 * 2**30 // 4, device="cuda")
print("sum", x.sum().item(), "expect", 3 * 2**30 // 4)
g = torch.Generator(device="cuda").manual_seed(0)
W = torch.randn(8192, 28672, device="cuda", dtype=torch.bfloat16, generator=g)
xin = torch.randn(64, 8192, device="cuda", dtype=torch.bfloat16, generator=g)
y = xin @ W
torch.cuda.synchronize()
t = time.time()
for _ in range(5):
    y = xin @ W
torch.cuda.synchronize()
dt = (time.time() - t) / 5
h = hashlib.sha256(y.float().cpu().numpy().tobytes()).hexdigest()[:16]
print(f"matmul hash {h} ms {dt * 1000:.2f}")
t = time.time()
z = torch.empty(2**31, dtype=torch.float32, device="cuda")
torch.cuda.synchronize()
ta = time.time() - t
z.fill_(1.0)
torch.cuda.synchronize()
t = time.time()
s = z.sum().item()
torch.cuda.synchronize()
tr = time.time() - t
print(f"alloc8g_s={ta:.3f} sum8g_s={tr:.4f} read_GBps={8 * 2**30 / tr / 1e9:.1f} sum={s}")
free2, total2 = torch.cuda.mem_get_info()
print(f"after free={free2} total={total2} allocated={torch.cuda.memory_allocated()} reserved={torch.cuda.memory_reserved()}")
del x, z, W
torch.cuda.empty_cache()
free3, _ = torch.cuda.mem_get_info()
print(f"after empty_cache free={free3}")
print("elapsed", round(time.time() - t0, 2))
