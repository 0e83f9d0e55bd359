"""The ResNets of lth4sa as PyTorch modules (the names of its checkpoints' tensors), with a SAM
twin at the blocks of a connection scheme; loading a run directory or checkpoint strictly."""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .sams import sam_factory


def model_spec(name):
    """(family, blocks per stage) of an lth4sa model name: resnet20/56/110 and resnet-basic-N
    (6n+2, basic blocks), resnet38/164 and resnet-bottleneck-N (9n+2), resnet50 (ImageNet)."""
    named = {"resnet20": ("basic", 20), "resnet56": ("basic", 56), "resnet110": ("basic", 110),
             "resnet38": ("bottleneck", 38), "resnet164": ("bottleneck", 164)}
    if name == "resnet50":
        return "imagenet", [3, 4, 6, 3]
    if name in named:
        family, depth = named[name]
    elif name.startswith("resnet-basic-") and name[len("resnet-basic-"):].isdigit():
        family, depth = "basic", int(name[len("resnet-basic-"):])
    elif name.startswith("resnet-bottleneck-") and name[len("resnet-bottleneck-"):].isdigit():
        family, depth = "bottleneck", int(name[len("resnet-bottleneck-"):])
    else:
        raise ValueError(f"unknown model '{name}'; expected resnet20, resnet38, resnet56, resnet110, resnet164, resnet50, "
                         "resnet-basic-N (N = 6n+2) or resnet-bottleneck-N (N = 9n+2)")
    per = 6 if family == "basic" else 9
    if depth < per + 2 or (depth - 2) % per:
        raise ValueError(f"model '{name}': depth {depth} is not {per}n+2")
    return family, [(depth - 2) // per] * 3


def parse_scheme(text, stages):
    """Bits of a scheme text ('0110-1010-0001', '-' optional) for `stages` blocks per stage;
    None or '' = every block."""
    total = sum(stages)
    if not text:
        return [True] * total
    bits = [c == "1" for c in text if c in "01"]
    if len(bits) != total or any(c not in "01-" for c in text):
        raise ValueError(f"scheme '{text}' does not have {total} bits (stages {'-'.join(map(str, stages))})")
    return bits


def parse_options(text):
    """'reduction=16,groups=4' -> {'reduction': 16, 'groups': 4} (ints where whole)."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        key, value = part.split("=", 1)
        number = float(value)
        out[key] = int(number) if number == int(number) and "." not in value and "e" not in value else number
    return out


class Downsample(nn.Sequential):
    """The projection shortcut: 1x1 conv (stride) and BN, named 0 and 1."""

    def __init__(self, inp, out, stride):
        super().__init__(nn.Conv2d(inp, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))


class Block(nn.Module):
    """A residual block y = relu(shortcut(x) + SAM(F(x))); F is basic (two 3x3) or bottleneck
    (1x1, 3x3 with the stride, 1x1 x4)."""

    def __init__(self, inp, planes, stride, bottleneck):
        super().__init__()
        out = planes * 4 if bottleneck else planes
        if bottleneck:
            self.conv1, self.bn1 = nn.Conv2d(inp, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
        else:
            self.conv1, self.bn1 = nn.Conv2d(inp, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.bottleneck = bottleneck
        self.downsample = Downsample(inp, out, stride) if stride != 1 or inp != out else None
        self.out_channels = out
        self.__dict__["sam"] = None  # the twin it applies (its own child, or the stage's): a reference, not a child

    def branch(self, x):
        f = F.relu(self.bn1(self.conv1(x)))
        if self.bottleneck:
            return self.bn3(self.conv3(F.relu(self.bn2(self.conv2(f)))))
        return self.bn2(self.conv2(f))

    def forward(self, x, state=None):
        f = self.branch(x)
        if self.sam is not None:
            if getattr(self.sam, "stateful", False):
                f, state = self.sam(f, state)
            else:
                f = self.sam(f)
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(f + s), state


class Stage(nn.Module):
    """The blocks of a stage (children 0, 1, ...); a shared twin (Full-Share, or a stateful
    SAM) is the stage's child named by the SAM's id; a stateful SAM's state starts at zeros."""

    def __init__(self, blocks):
        super().__init__()
        self.count = len(blocks)
        for i, b in enumerate(blocks):
            self.add_module(str(i), b)

    def forward(self, x):
        state = None
        for i in range(self.count):
            x, state = getattr(self, str(i))(x, state)
        return x


class ResNet(nn.Module):
    """An lth4sa ResNet (NCHW): stem, stages, global average pool, fc; with `sam` (a plugin
    id with a registered twin) at the blocks whose `scheme` bit is 1, one twin per block
    (`attach` 'full-sa') or per stage ('full-share'; stateful SAMs are always per stage).
    Tensor names are those of lth4sa's checkpoints (PyTorch's CIFAR ResNet names)."""

    def __init__(self, model, classes, sam=None, scheme=None, attach="full-sa", sam_options=None):
        super().__init__()
        family, stages = model_spec(model)
        self.model, self.classes, self.sam_id, self.attach = model, classes, sam, attach
        cifar = family != "imagenet"
        width = 16 if cifar else 64
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False) if cifar else nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = None if cifar else nn.MaxPool2d(3, stride=2, padding=1)
        planes = [16, 32, 64] if cifar else [64, 128, 256, 512]
        bits = parse_scheme(scheme, stages)
        self.bits = bits
        factory = sam_factory(sam) if sam else None
        options = sam_options or {}
        inp, k = width, 0
        for s, n in enumerate(stages):
            blocks = []
            for b in range(n):
                blocks.append(Block(inp, planes[s], 2 if s > 0 and b == 0 else 1, family != "basic"))
                inp = blocks[-1].out_channels
            stage = Stage(blocks)
            shared = None
            for b, block in enumerate(blocks):
                if not (factory and bits[k + b]):
                    continue
                if shared is not None:
                    block.__dict__["sam"] = shared
                    continue
                twin = factory(block.out_channels, **options)
                if getattr(twin, "stateful", False) or attach == "full-share":
                    shared = twin
                    stage.add_module(sam, twin)
                else:
                    block.add_module(sam, twin)
                block.__dict__["sam"] = twin
            k += n
            self.add_module(f"layer{s + 1}", stage)
        self.stages = len(stages)
        self.fc = nn.Linear(inp, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.bias is None:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for s in range(self.stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))


def create(model, sam=None, scheme=None, classes=10, attach="full-sa", **sam_options):
    """An untrained network: `model` (lth4sa's name), `sam` (plugin id) at `scheme`."""
    return ResNet(model, classes, sam=sam, scheme=scheme, attach=attach, sam_options=sam_options)


def checkpoint_path(run):
    """`run`'s checkpoint file: the file itself, a run directory's checkpoint, or for a pipeline
    run directory (`lth4sa run`, holding ticket.json) the ticket's network (`train/<bits>`)."""
    ticket = os.path.join(run, "ticket.json")
    if os.path.isdir(run) and not os.path.isfile(os.path.join(run, "checkpoint.safetensors")) and os.path.isfile(ticket):
        with open(ticket) as fh:
            run = os.path.join(run, "train", "".join(c for c in json.load(fh)["scheme"] if c in "01"))
    path = os.path.join(run, "checkpoint.safetensors") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no lth4sa checkpoint at '{path}'")
    return path


def metadata(run):
    """The checkpoint's metadata (model, classes, config, normalisation, sam.*, scheme)."""
    from safetensors import safe_open
    with safe_open(checkpoint_path(run), "pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta or "model" not in meta:
        raise ValueError(f"'{checkpoint_path(run)}' is not an lth4sa training checkpoint (no run configuration in its metadata)")
    return meta


def load(run, scheme=None):
    """The network of `run` (a run directory or checkpoint file) in eval mode: its model, its SAM
    at the recorded scheme (a supernet: every block, or the sub-network `scheme`), its weights
    and batch-norm statistics loaded strictly (no missing or unexpected tensor)."""
    from safetensors.torch import load_file
    meta = metadata(run)
    config = json.loads(meta["config"])
    recorded = meta.get("scheme") or None
    if scheme is not None and config.get("keepProb") is None:
        raise ValueError(f"scheme= selects a sub-network of a supernet; '{checkpoint_path(run)}' is an ordinary network (its scheme is {recorded})")
    net = ResNet(meta["model"], int(meta["classes"]), sam=meta.get("sam.id"), scheme=recorded,
                 attach=meta.get("sam.attach", config.get("attach", "full-sa")), sam_options=parse_options(meta.get("sam.options")))
    state = load_file(checkpoint_path(run))
    net.load_state_dict(state, strict=True)
    if scheme is not None:   # the supernet's sub-network: the SAMs of the 0 bits switched off
        bits = parse_scheme(scheme, model_spec(meta["model"])[1])
        k = 0
        for s in range(net.stages):
            stage = getattr(net, f"layer{s + 1}")
            for b in range(stage.count):
                if not bits[k]:
                    getattr(stage, str(b)).__dict__["sam"] = None
                k += 1
    return net.eval()


def normalization(run):
    """(mean, std) per channel of the training images, from the checkpoint's metadata."""
    meta = metadata(run)
    mean = [float(v) for v in meta["normalization.mean"].split(",")]
    std = [float(v) for v in meta["normalization.std"].split(",")]
    return mean, std


def preprocess(images, run):
    """Images as uint8 (0..255) or float pixel values, [N, H, W, 3] or [N, 3, H, W] (numpy or
    torch) -> the normalised NCHW float32 tensor the network of `run` takes."""
    mean, std = normalization(run)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).to(torch.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be [N, H, W, 3] or [N, 3, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != 3 and x.shape[3] == 3:
        x = x.permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return ((x - m) / s).contiguous()


def fold_batch_norms(model):
    """Folds every batch norm of `model` (eval mode) into the convolution before it, in place:
    the deployed network lth4sa times (same function, fewer operations). Returns the model."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model.eval()
    model.conv1, model.bn1 = fuse_conv_bn_eval(model.conv1, model.bn1), nn.Identity()
    for s in range(model.stages):
        stage = getattr(model, f"layer{s + 1}")
        for b in range(stage.count):
            block = getattr(stage, str(b))
            for c, n in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
                if hasattr(block, c):
                    setattr(block, c, fuse_conv_bn_eval(getattr(block, c), getattr(block, n)))
                    setattr(block, n, nn.Identity())
            if block.downsample is not None:
                block.downsample[0] = fuse_conv_bn_eval(block.downsample[0], block.downsample[1])
                block.downsample[1] = nn.Identity()
    return model
