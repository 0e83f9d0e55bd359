"""PyTorch twins of lth4sa's SAM plugins: the same function and the same parameter names as
the C plugin of the same id, so that a checkpoint's tensors load into them strictly.

Every twin is built as ``Twin(channels, **options)`` (the plugin's options, e.g. ``reduction``)
and maps a branch output F [N, C, H, W] to F' (the recalibrated branch, before the shortcut
is added). A stateful twin (``stateful = True``, DIA) maps (F, state) to (F', state) along the
blocks of a stage, the state starting at ``None`` (zeros) at each stage.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

_REGISTRY = {}


def register_sam(sam_id, factory):
    """Makes ``factory(channels, **options)`` the twin of the plugin whose descriptor id is
    ``sam_id``; its parameter names must be the plugin's (``lth4sa plugins info ID`` lists them)."""
    _REGISTRY[sam_id] = factory


def sam_factory(sam_id):
    """The twin registered for ``sam_id``; a clear error naming the known ones otherwise."""
    if sam_id not in _REGISTRY:
        raise KeyError(f"no PyTorch twin for SAM '{sam_id}'; known: {', '.join(sorted(_REGISTRY))} "
                       f"(lth4sa.register_sam('{sam_id}', Module) adds one)")
    return _REGISTRY[sam_id]


class SE(nn.Module):
    """Squeeze-and-Excitation: F * sigmoid(fc2(relu(fc1(GAP(F)))))."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // int(reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, f):
        a = torch.sigmoid(self.fc2(F.relu(self.fc1(f.mean(dim=(2, 3))))))
        return f * a[:, :, None, None]


class SGE(nn.Module):
    """Spatial group-wise enhance: per group, each pixel's dot product with the group's mean
    feature, normalised over the pixels (unbiased std + 1e-5), sigmoid(gamma c' + beta)."""

    def __init__(self, channels, groups=4):
        super().__init__()
        self.groups = int(groups)
        self.weight = nn.Parameter(torch.zeros(self.groups))
        self.bias = nn.Parameter(torch.ones(self.groups))

    def forward(self, f):
        n, c, h, w = f.shape
        g = self.groups
        fg = f.reshape(n, g, c // g, h * w)
        t = (fg * fg.mean(dim=3, keepdim=True)).sum(dim=2)                       # [N, G, HW]
        t = (t - t.mean(dim=2, keepdim=True)) / (t.std(dim=2, keepdim=True) + 1e-5)
        a = torch.sigmoid(t * self.weight[None, :, None] + self.bias[None, :, None])
        return (fg * a[:, :, None, :]).reshape(n, c, h, w)


class _MLP(nn.Module):
    """Linear -> ReLU -> Linear, named l0 and l2 (DIA's transforms)."""

    def __init__(self, channels, hidden, out):
        super().__init__()
        self.l0 = nn.Linear(channels, hidden)
        self.l2 = nn.Linear(hidden, out)

    def forward(self, x):
        return self.l2(F.relu(self.l0(x)))


class DIA(nn.Module):
    """Dense-and-implicit attention: one LSTM per stage; gates = U(GAP(F)) + V(h) in the order
    i, f, g, o; c = sigmoid(f) c + sigmoid(i) tanh(g); h = sigmoid(o) sigmoid(c); F' = F * h."""

    stateful = True

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = channels // int(reduction)
        self.ih = _MLP(channels, hidden, 4 * channels)
        self.hh = _MLP(channels, hidden, 4 * channels)

    def forward(self, f, state=None):
        s = f.mean(dim=(2, 3))
        h, c = state if state is not None else (torch.zeros_like(s), torch.zeros_like(s))
        i, fo, g, o = (self.ih(s) + self.hh(h)).chunk(4, dim=1)
        c = torch.sigmoid(fo) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.sigmoid(c)
        return f * h[:, :, None, None], (h, c)


class GC(nn.Module):
    """Global context block (GCNet), additive: F + transform(sum_i softmax(conv_mask(F))_i F_i),
    transform = 1x1 conv, LayerNorm, ReLU, 1x1 conv (mmcv ContextBlock names)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // int(reduction)
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add_conv = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.LayerNorm([hidden, 1, 1], eps=1e-5),
                                              nn.ReLU(inplace=False), nn.Conv2d(hidden, channels, 1))
        nn.init.zeros_(self.channel_add_conv[3].weight)
        nn.init.zeros_(self.channel_add_conv[3].bias)

    def forward(self, f):
        n, c, h, w = f.shape
        p = torch.softmax(self.conv_mask(f).reshape(n, 1, h * w), dim=2)        # [N, 1, HW]
        context = torch.bmm(f.reshape(n, c, h * w), p.transpose(1, 2)).reshape(n, c, 1, 1)
        return f + self.channel_add_conv(context)


class CBAM(nn.Module):
    """CBAM as the SDK example computes it: Mc = sigmoid(MLP(avg) + MLP(max)) over the pixels,
    Ms = sigmoid(conv7x7([mean_c, max_c] of F * Mc) + b), F' = F * Mc * Ms."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // int(reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=False), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, f):
        mc = torch.sigmoid(self.mlp(f.mean(dim=(2, 3))) + self.mlp(f.amax(dim=(2, 3))))[:, :, None, None]
        f1 = f * mc
        ms = torch.sigmoid(self.spatial(torch.cat([f1.mean(dim=1, keepdim=True), f1.amax(dim=1, keepdim=True)], dim=1)))
        return f1 * ms


def eca_kernel(channels, gamma=2.0, b=1.0):
    """ECA's adaptive kernel size: t = int(|log2(C) + b| / gamma), made odd."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention: F * sigmoid(conv1d over the channels of GAP(F)), no bias."""

    def __init__(self, channels, k_size=0, gamma=2.0, b=1.0):
        super().__init__()
        k = int(k_size) or eca_kernel(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, f):
        y = self.conv(f.mean(dim=(2, 3))[:, None, :])[:, 0, :]
        return f * torch.sigmoid(y)[:, :, None, None]


class SimAM(nn.Module):
    """SimAM (parameter-free): d = (F - mu)^2, y = d / (4 (sum_hw d / (HW - 1) + lambda)) + 1/2,
    F * sigmoid(y); a 1x1 map gives y = 1/2, as the plugin does."""

    def __init__(self, channels, **options):
        super().__init__()
        self.e_lambda = float(options.get("lambda", 1e-4))

    def forward(self, f):
        d = (f - f.mean(dim=(2, 3), keepdim=True)).pow(2)
        n = d[0, 0].numel() - 1                                   # H W - 1 (a 1x1 map: d = 0, v = 0)
        v = d.sum(dim=(2, 3), keepdim=True) / (n + (n == 0))
        return f * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021), the authors' module: pools along H and W
    separately, a shared 1x1 conv + BatchNorm + h-swish, then F * a_w * a_h. Hidden channels
    M = max(min_hidden, C // reduction); the batch norm's running statistics are buffers."""

    def __init__(self, channels, reduction=32, min_hidden=8):
        super().__init__()
        hidden = max(int(min_hidden), channels // int(reduction))
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv_h = nn.Conv2d(hidden, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, f):
        h, w = f.shape[2], f.shape[3]
        x_h = f.mean(dim=3, keepdim=True)                          # [N, C, H, 1]
        x_w = f.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)      # [N, C, W, 1]
        y = self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2)))
        y = y * F.relu6(y + 3) / 6                                 # h_swish
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(y_h))                      # [N, C, H, 1]
        a_w = torch.sigmoid(self.conv_w(y_w.permute(0, 1, 3, 2)))  # [N, C, 1, W]
        return f * a_w * a_h


for _id, _twin in [("se", SE), ("sge", SGE), ("dia", DIA), ("gc", GC), ("cbam", CBAM), ("eca", ECA), ("simam", SimAM),
                   ("coordatt", CoordAtt)]:
    register_sam(_id, _twin)
