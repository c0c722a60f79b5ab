"""Lets PyPI's CUDA-linked torchvision import beside a CPU-only torch (installed by scripts/setup.sh as a .pth hook).

torchvision's compiled ops cannot load without libtorch_cuda, and its meta registrations then fail with
"operator torchvision::nms does not exist". Declaring those op schemas before torchvision imports lets its
pure-Python parts (used by transformers' Qwen2-VL image/video processors) work; torchvision.ops stays unusable,
which reasonkit does not need. Costs nothing until something imports torchvision.
"""

import importlib.abc
import sys


class _DeclareTorchvisionOps(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)  # run once, then get out of the way
        try:
            import torch

            if torch.version.cuda is None:
                library = torch.library.Library("torchvision", "FRAGMENT")
                for op in ("nms", "qnms"):
                    try:
                        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                    except RuntimeError:
                        pass  # already declared
                sys.modules["_reasonkit_torchvision_ops"] = library  # keep the Library object alive
        except Exception:
            pass
        return None  # let the normal import machinery load torchvision


sys.meta_path.insert(0, _DeclareTorchvisionOps())
