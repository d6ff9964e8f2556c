"""anomalib's four FrEIA-based models, built small, shared by the test and by the fixture generator.

Everything here imports only torch at module level, so pytest can import it where anomalib is missing.
Each case says how to build the model (a resnet18 or efficientnet_b5 backbone with random weights:
nothing is downloaded), how to compute its training loss, which attribute holds the flow (the part whose
``state_dict`` comes from FrEIA or freia_graph) and how to run that flow on backbone features.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Case", "CASES", "FREIA_IMPORTS", "import_torchvision", "no_downloads", "flatten"]

# Every FrEIA path and name anomalib 2.7.0 imports (grep "FrEIA" over its sources):
#   FrEIA                 -> framework, modules                      (uflow: `from FrEIA import framework as ff`)
#   FrEIA.framework       -> SequenceINN, GraphINN, InputNode, Node, OutputNode
#   FrEIA.modules         -> InvertibleModule, Split, Concat, IRevNetUpsampling
FREIA_IMPORTS = {
    "FrEIA": ("framework", "modules"),
    "FrEIA.framework": ("SequenceINN", "GraphINN", "InputNode", "Node", "OutputNode"),
    "FrEIA.modules": ("InvertibleModule", "Split", "Concat", "IRevNetUpsampling"),
}


def import_torchvision() -> None:
    """Import torchvision, also where its compiled ops cannot load.

    PyPI's torchvision wheels are built against CUDA torch; beside the CPU build of torch their ops library
    fails to load and ``import torchvision`` dies registering a fake kernel for ``torchvision::nms``
    (pytorch/vision#9077). None of anomalib's flow models uses those ops, so declaring the two schemas that
    torchvision's import needs is enough.
    """
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import_torchvision.library = library  # keep the definitions alive
    import torchvision  # noqa: F401


@contextmanager
def no_downloads() -> Iterator[None]:
    """Build backbones with random weights: timm models and CS-Flow's efficientnet_b5 load nothing."""
    import timm
    import torchvision
    from anomalib.models.image.csflow import torch_model as csflow

    create_model, efficientnet_b5 = timm.create_model, csflow.efficientnet_b5

    def create_random_model(*args: Any, **kwargs: Any) -> nn.Module:
        return create_model(*args, **{**kwargs, "pretrained": False})

    timm.create_model = create_random_model
    csflow.efficientnet_b5 = lambda weights=None: torchvision.models.efficientnet_b5(weights=None)
    try:
        yield
    finally:
        timm.create_model, csflow.efficientnet_b5 = create_model, efficientnet_b5


def flatten(outputs: Any) -> list[torch.Tensor]:
    """All tensors in nested lists/tuples, in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [tensor for item in outputs for tensor in flatten(item)]


@dataclass(frozen=True)
class Case:
    """One anomalib model: its torch class, small constructor arguments and the pieces the tests need.

    ``loss(model, images)`` is one training step's loss as anomalib's Lightning module computes it;
    ``features(model, images)`` the flow's inputs; ``run_flow(flow, features)`` the flow's outputs (a
    nested list of tensors); ``flow_attribute`` names the submodule built from FrEIA's framework.
    """

    name: str
    module: str
    cls: str
    kwargs: dict[str, Any]
    image_size: int
    flow_attribute: str
    loss: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    features: Callable[[nn.Module, torch.Tensor], Any]
    run_flow: Callable[[nn.Module, Any], Any]

    def build(self, seed: int = 0) -> nn.Module:
        """The model, with weights drawn from ``seed``."""
        import importlib

        torch.manual_seed(seed)
        model_class = getattr(importlib.import_module(f"anomalib.models.image.{self.module}"), self.cls)
        with no_downloads():
            return model_class(**self.kwargs)

    def images(self, batch: int = 2, seed: int = 1) -> torch.Tensor:
        """A reproducible batch of random images."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, self.image_size, self.image_size, generator=generator)


def _fastflow_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    from anomalib.models.image.fastflow.loss import FastflowLoss

    return FastflowLoss()(*model(images))


def _csflow_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    from anomalib.models.image.csflow.loss import CsFlowLoss

    return CsFlowLoss()(*model(images))


def _uflow_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    from anomalib.models.image.uflow.loss import UFlowLoss

    return UFlowLoss()(*model(images))


def _cflow_fibers(model: nn.Module, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: the feature vectors of every pixel and their positional encodings (CflowModel.forward)."""
    import einops
    from anomalib.models.image.cflow.utils import positional_encoding_2d

    with torch.no_grad():
        activation = model.encoder(images)
    fibers = []
    for layer in model.pool_layers:
        batch, _, height, width = activation[layer].shape
        encoding = positional_encoding_2d(model.condition_vector, height, width).expand(batch, -1, -1, -1)
        fibers.append((einops.rearrange(activation[layer], "b c h w -> (b h w) c"),
                       einops.rearrange(encoding, "b c h w -> (b h w) c")))
    return fibers


def _cflow_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Cflow's Lightning training step (one fiber batch per layer, summed instead of stepped per batch)."""
    from anomalib.models.image.cflow.utils import get_logp

    loss = images.new_zeros(())
    for decoder, (features, encoding) in zip(model.decoders, _cflow_fibers(model, images)):
        p_u, log_jac_det = decoder(features, [encoding])
        log_prob = get_logp(features.shape[1], p_u, log_jac_det) / features.shape[1]
        loss = loss - nn.functional.logsigmoid(log_prob).mean()
    return loss


def _run_each(flows: nn.Module, features: Any) -> list:
    return [list(flow(feature)) for flow, feature in zip(flows, features)]


def _run_cflow(decoders: nn.Module, fibers: Any) -> list:
    return [list(decoder(features, [encoding])) for decoder, (features, encoding) in zip(decoders, fibers)]


def _run_graph(flow: nn.Module, features: Any) -> list:
    return list(flow(features))


CASES = {case.name: case for case in [
    Case("fastflow", "fastflow.torch_model", "FastflowModel",
         {"input_size": (64, 64), "backbone": "resnet18", "pre_trained": False, "flow_steps": 2, "hidden_ratio": 0.125},
         64, "fast_flow_blocks", _fastflow_loss,
         lambda model, images: model._get_cnn_features(images), _run_each),
    Case("cflow", "cflow.torch_model", "CflowModel",
         {"backbone": "resnet18", "layers": ["layer1", "layer2"], "pre_trained": False, "fiber_batch_size": 512,
          "condition_vector": 8, "coupling_blocks": 2},
         32, "decoders", _cflow_loss, _cflow_fibers, _run_cflow),
    Case("csflow", "csflow.torch_model", "CsFlowModel",
         {"input_size": (128, 128), "cross_conv_hidden_channels": 2, "n_coupling_blocks": 2},
         128, "graph", _csflow_loss,
         lambda model, images: model.feature_extractor(images), _run_graph),
    Case("uflow", "uflow.torch_model", "UflowModel",
         {"input_size": (64, 64), "backbone": "resnet18", "flow_steps": 2, "affine_subnet_channels_ratio": 0.1},
         64, "flow", _uflow_loss,
         lambda model, images: model.feature_extractor(images), _run_graph),
]}
