#!/usr/bin/env python3
"""PyTorch reference vectors for the SAM plugins (Tests/Fixtures/vectors/<case>).

Each case folder holds manifest.json and NumPy float32 files (layout: Tests/Fixtures/vectors/README.md):
the random draws -- input{k}.npy (NHWC), dout{k}.npy, param_<name>.npy -- and what PyTorch
computes from them in float64 -- output{k}.npy, dinput{k}.npy, grad_<name>.npy.

    python3 scripts/reference_vectors.py                # recompute the derived files of every case
    python3 scripts/reference_vectors.py --check        # compare them with the stored ones, no writing
    python3 scripts/reference_vectors.py --create CASE  # fresh random draws for CASE (seeded), then derive

Needs torch and numpy (e.g. `pip install "torch==2.13.0+cpu" numpy`). The Swift test
(Tests/PluginHostTests/ReferenceTests.swift) checks every plugin against these files, relative
error < 1e-4.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "vectors")
CASES = {
    "se": {"sam": "se", "options": {"reduction": 16}, "calls": 1, "shared": False},
    "se_shared": {"sam": "se", "options": {"reduction": 16}, "calls": 2, "shared": True},
    "sge": {"sam": "sge", "options": {"groups": 4}, "calls": 1, "shared": False},
    "dia": {"sam": "dia", "options": {"reduction": 4}, "calls": 4, "shared": True, "scheme": [1, 0, 1, 1]},
    "eca": {"sam": "eca", "options": {"k_size": 0}, "calls": 1, "shared": False},          # k = 3 from C = 32
    "eca_k5": {"sam": "eca", "options": {"k_size": 5}, "calls": 2, "shared": True},
    "simam": {"sam": "simam", "options": {"lambda": 1e-4}, "calls": 1, "shared": False},
}
B, H, W, C = 3, 5, 6, 32


def mlp(x, p, prefix):
    """Linear -> ReLU -> Linear with PyTorch (out, in) weights `<prefix>0.*` and `<prefix>2.*`."""
    h = torch.relu(x @ p[prefix + "0.weight"].T + p[prefix + "0.bias"])
    return h @ p[prefix + "2.weight"].T + p[prefix + "2.bias"]


def se(f, p, m):
    """F [B,H,W,C] -> F * sigmoid(fc2(relu(fc1(GAP(F)))))."""
    s = f.mean(dim=(1, 2))
    a = torch.sigmoid(torch.relu(s @ p["fc1.weight"].T + p["fc1.bias"]) @ p["fc2.weight"].T + p["fc2.bias"])
    return f * a[:, None, None, :]


def sge(f, p, m):
    """Per group g: c_i = <GAP(F_g), F_g(i)>, normalised over pixels (unbiased std + 1e-5),
    A = sigmoid(gamma_g c' + beta_g), F' = F * A over the group's channels."""
    g = m["options"]["groups"]
    b, h, w, c = f.shape
    fg = f.reshape(b, h * w, g, c // g)
    s = fg.mean(dim=1, keepdim=True)
    t = (fg * s).sum(dim=3)                                  # [B, HW, G]
    t = (t - t.mean(dim=1, keepdim=True)) / (t.std(dim=1, keepdim=True) + 1e-5)
    a = torch.sigmoid(t * p["weight"] + p["bias"])
    return (fg * a[..., None]).reshape(b, h, w, c)


def eca(f, p, m):
    """F [B,H,W,C] -> F * sigmoid(conv1d over the channels of GAP(F), zero padding, no bias)."""
    w = p["conv.weight"]                                      # (1, 1, k)
    y = torch.nn.functional.conv1d(f.mean(dim=(1, 2))[:, None, :], w, padding=(w.shape[2] - 1) // 2)[:, 0, :]
    return f * torch.sigmoid(y)[:, None, None, :]


def simam(f, p, m):
    """SimAM's reference code: d = (F - mu)^2, y = d / (4 (sum_hw d / (HW - 1) + lambda)) + 1/2, F * sigmoid(y)."""
    n = f.shape[1] * f.shape[2] - 1
    d = (f - f.mean(dim=(1, 2), keepdim=True)).pow(2)
    y = d / (4 * (d.sum(dim=(1, 2), keepdim=True) / n + m["options"]["lambda"])) + 0.5
    return f * torch.sigmoid(y)


def eca_kernel(channels, k_size):
    """ECA's kernel size: k_size, or t (odd) / t + 1 with t = int(|log2(C) + 1| / 2)."""
    import math
    if k_size:
        return k_size
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def forward(case, m, inputs, p):
    """Outputs of every call; DIA carries (h, c) through the connected blocks of its stage."""
    if m["sam"] == "dia":
        outs, hs, cs = [], torch.zeros(inputs[0].shape[0], C, dtype=torch.float64), torch.zeros(inputs[0].shape[0], C, dtype=torch.float64)
        for k, f in enumerate(inputs):
            if not m["scheme"][k]:
                outs.append(f)                                # no SAM: output = input, state passes on
                continue
            gates = mlp(f.mean(dim=(1, 2)), p, "ih.l") + mlp(hs, p, "hh.l")
            i, fo, g, o = gates.chunk(4, dim=1)
            cs = torch.sigmoid(fo) * cs + torch.sigmoid(i) * torch.tanh(g)
            hs = torch.sigmoid(o) * torch.sigmoid(cs)
            outs.append(f * hs[:, None, None, :])
        return outs
    fn = {"se": se, "sge": sge, "eca": eca, "simam": simam}[m["sam"]]
    return [fn(f, p, m) for f in inputs]   # shared or not, the same parameter values at every call


def load(folder, name):
    return torch.tensor(np.load(os.path.join(folder, name + ".npy")).astype(np.float64), requires_grad=True)


def create(case):
    m = dict(CASES[case], B=B, H=H, W=W, C=C)
    rng = np.random.default_rng(sorted(CASES).index(case) + 1)
    shapes = {"se": {"fc1.weight": (2, C), "fc1.bias": (2,), "fc2.weight": (C, 2), "fc2.bias": (C,)},
              "sge": {"weight": (4,), "bias": (4,)},
              "dia": {f"{u}.l0.weight": (C // 4, C) for u in ("ih", "hh")},
              "eca": {"conv.weight": (1, 1, eca_kernel(C, m["options"].get("k_size", 0)))},
              "simam": {}}[m["sam"]]
    if m["sam"] == "dia":
        for u in ("ih", "hh"):
            shapes.update({f"{u}.l0.bias": (C // 4,), f"{u}.l2.weight": (4 * C, C // 4), f"{u}.l2.bias": (4 * C,)})
    folder = os.path.join(ROOT, case)
    os.makedirs(folder, exist_ok=True)
    for k in range(m["calls"]):
        np.save(os.path.join(folder, f"input{k}.npy"), rng.standard_normal((B, H, W, C)).astype(np.float32))
        np.save(os.path.join(folder, f"dout{k}.npy"), rng.standard_normal((B, H, W, C)).astype(np.float32))
    for name, shape in shapes.items():
        np.save(os.path.join(folder, f"param_{name}.npy"), (0.5 * rng.standard_normal(shape)).astype(np.float32))
    with open(os.path.join(folder, "manifest.json"), "w") as fh:
        json.dump(m, fh, indent=1)


def derive(case, check):
    folder = os.path.join(ROOT, case)
    with open(os.path.join(folder, "manifest.json")) as fh:
        m = json.load(fh)
    inputs = [load(folder, f"input{k}") for k in range(m["calls"])]
    douts = [load(folder, f"dout{k}") for k in range(m["calls"])]
    names = sorted(f[len("param_"):-4] for f in os.listdir(folder) if f.startswith("param_"))
    p = {n: load(folder, "param_" + n) for n in names}
    outs = forward(case, m, inputs, p)
    sum((o * d).sum() for o, d in zip(outs, douts)).backward()
    derived = {f"output{k}": o.detach() for k, o in enumerate(outs)}
    derived.update({f"dinput{k}": f.grad for k, f in enumerate(inputs)})
    derived.update({"grad_" + n: t.grad for n, t in p.items()})
    worst = 0.0
    for name, value in derived.items():
        value = value.numpy().astype(np.float32)
        path = os.path.join(folder, name + ".npy")
        if check:
            stored = np.load(path)
            err = float(np.abs(stored - value).max() / max(np.abs(value).max(), 1e-30))
            worst = max(worst, err)
        else:
            np.save(path, value)
    print(f"{case}: {len(derived)} tensors" + (f", worst relative difference to the stored files {worst:.2e}" if check else " written"))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the stored files instead of writing them")
    ap.add_argument("--create", metavar="CASE", choices=sorted(CASES), help="fresh random draws for CASE first")
    args = ap.parse_args()
    if args.create:
        create(args.create)
    worst = max(derive(c, args.check) for c in (CASES if not args.create else [args.create]))
    if args.check and worst > 1e-6:
        print(f"stored vectors differ from PyTorch by {worst:.2e} (> 1e-6)")
        sys.exit(1)


if __name__ == "__main__":
    main()
