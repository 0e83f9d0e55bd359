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
    "coordatt": {"sam": "coordatt", "options": {"reduction": 32, "min_hidden": 8}, "calls": 1, "shared": False},  # M = 8
    # M = 4, H != W (a transposed pooling shows), one instance at two calls: its running statistics update twice
    "coordatt_shared": {"sam": "coordatt", "options": {"reduction": 8, "min_hidden": 2}, "calls": 2, "shared": True, "H": 4, "W": 7},
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


def coordatt_hidden(m):
    return max(int(m["options"]["min_hidden"]), m["C"] // int(m["options"]["reduction"]))


def coordatt(f, p, m, buffers):
    """The authors' CoordAtt on F [B,H,W,C]: directional pools, conv1 -> BN (training mode: batch
    statistics, running ones updated in `buffers`) -> h_swish, conv_h / conv_w -> sigmoid, F * a_w * a_h."""
    F_ = torch.nn.functional
    x = f.permute(0, 3, 1, 2)
    h, w = x.shape[2], x.shape[3]
    y = torch.cat([x.mean(dim=3, keepdim=True), x.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)], dim=2)
    y = F_.conv2d(y, p["conv1.weight"], p["conv1.bias"])
    y = F_.batch_norm(y, buffers["bn1.running_mean"], buffers["bn1.running_var"], p["bn1.weight"], p["bn1.bias"],
                      training=True, momentum=0.1, eps=1e-5)
    buffers["bn1.num_batches_tracked"] += 1
    y = y * F_.relu6(y + 3) / 6
    y_h, y_w = torch.split(y, [h, w], dim=2)
    a_h = torch.sigmoid(F_.conv2d(y_h, p["conv_h.weight"], p["conv_h.bias"]))
    a_w = torch.sigmoid(F_.conv2d(y_w.permute(0, 1, 3, 2), p["conv_w.weight"], p["conv_w.bias"]))
    return (x * a_w * a_h).permute(0, 2, 3, 1)


def eca_kernel(channels, k_size):
    """ECA's kernel size: k_size, or t (odd) / t + 1 with t = int(|log2(C) + 1| / 2)."""
    import math
    if k_size:
        return k_size
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def forward(case, m, inputs, p, buffers):
    """Outputs of every call; DIA carries (h, c) through the connected blocks of its stage;
    CoordAtt updates its running statistics in `buffers` at each call (one instance: shared or
    not, every call starts from the same parameters, and a shared one's statistics update twice)."""
    if m["sam"] == "coordatt":
        return [coordatt(f, p, m, buffers) for f in inputs]
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
    m = dict(dict(B=B, H=H, W=W, C=C), **CASES[case])
    rng = np.random.default_rng(sorted(CASES).index(case) + 1)
    shapes = {"se": {"fc1.weight": (2, C), "fc1.bias": (2,), "fc2.weight": (C, 2), "fc2.bias": (C,)},
              "sge": {"weight": (4,), "bias": (4,)},
              "dia": {f"{u}.l0.weight": (C // 4, C) for u in ("ih", "hh")},
              "eca": {"conv.weight": (1, 1, eca_kernel(C, m["options"].get("k_size", 0)))},
              "simam": {},
              "coordatt": {}}[m["sam"]]
    if m["sam"] == "coordatt":
        c, k = m["C"], coordatt_hidden(m)
        shapes.update({"conv1.weight": (k, c, 1, 1), "conv1.bias": (k,), "bn1.weight": (k,), "bn1.bias": (k,),
                       "conv_h.weight": (c, k, 1, 1), "conv_h.bias": (c,), "conv_w.weight": (c, k, 1, 1), "conv_w.bias": (c,)})
    if m["sam"] == "dia":
        for u in ("ih", "hh"):
            shapes.update({f"{u}.l0.bias": (C // 4,), f"{u}.l2.weight": (4 * C, C // 4), f"{u}.l2.bias": (4 * C,)})
    folder = os.path.join(ROOT, case)
    os.makedirs(folder, exist_ok=True)
    for k in range(m["calls"]):
        np.save(os.path.join(folder, f"input{k}.npy"), rng.standard_normal((m["B"], m["H"], m["W"], m["C"])).astype(np.float32))
        np.save(os.path.join(folder, f"dout{k}.npy"), rng.standard_normal((m["B"], m["H"], m["W"], m["C"])).astype(np.float32))
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
    buffers = {}
    if m["sam"] == "coordatt":                                # the initial values the plugin declares
        k = coordatt_hidden(m)
        buffers = {"bn1.running_mean": torch.zeros(k, dtype=torch.float64), "bn1.running_var": torch.ones(k, dtype=torch.float64),
                   "bn1.num_batches_tracked": torch.zeros((), dtype=torch.float64)}
    outs = forward(case, m, inputs, p, buffers)
    sum((o * d).sum() for o, d in zip(outs, douts)).backward()
    derived = {f"output{k}": o.detach() for k, o in enumerate(outs)}
    derived.update({f"dinput{k}": f.grad for k, f in enumerate(inputs)})
    derived.update({"grad_" + n: t.grad for n, t in p.items()})
    derived.update({"buffer_" + n: t for n, t in buffers.items()})   # after every call's training forward
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
