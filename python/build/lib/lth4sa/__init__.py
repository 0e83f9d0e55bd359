"""lth4sa for PyTorch: the networks lth4sa trains as `nn.Module`s.

    model = lth4sa.load(RUN)                      # the checkpoint's ResNet with its SAM at its scheme
    logits = model(lth4sa.preprocess(images, RUN))
    net = lth4sa.create("resnet20", "se", "1-1-1", classes=10)
    lth4sa.register_sam("myid", MyTwin)           # the twin of a third-party plugin
"""
from .model import ResNet, create, load, metadata, normalization, preprocess
from .sams import CBAM, DIA, ECA, GC, SE, SGE, SimAM, register_sam

__all__ = ["ResNet", "create", "load", "metadata", "normalization", "preprocess", "register_sam",
           "SE", "SGE", "DIA", "GC", "CBAM", "ECA", "SimAM"]
