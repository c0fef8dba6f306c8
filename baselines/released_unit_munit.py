"""UNIT's and MUNIT's generator files (`gen_XXXXXXXX.pt`) as this harness's UNIT and MUNIT methods.

Both authors' codes (mingyuliutw/UNIT, master branch; NVlabs/MUNIT) save at every snapshot one file
`gen_<iteration>.pt` holding {"a": state dict of domain A's generator, "b": domain B's}. Their
released files (`unit_gta2city.pt`, MUNIT's `edges2shoes.pt`, ...) are the same dict. Written from the
layout of their modules; no code of theirs is used.

Key layout. Every convolution sits in a block with the attributes pad, conv, norm and activation, and
every sequence of layers is a `model` Sequential, so (k, i, j: indices):

    UNIT generator (VAEGen)         MUNIT generator (AdaINGen)         this harness (baselines/unit.py, munit.py)
    enc.model.k.conv.*              enc_content.model.k.conv.*          encoder_a.k.0.* / content_a.k.0.*
      k = 0: 7x7 conv from RGB; k = 1, 2: 4x4 stride-2 convs
    enc.model.3.model.i.model.j.conv.*   (the same under enc_content)   encoder_a.<3+i>.body.j.0.*
      residual block i, convolution j (IN between, without affine)
    dec.model.0.model.i.model.j.conv.*                                  UNIT: decoder_a.i.body.j.0.*
                                                                        MUNIT: decoder_a.blocks.i.conv<j+1>.*
    dec.model.k.conv.*, k = 2, 4 (after nearest up-sampling at 1, 3;    UNIT: decoder_a.<n_res+k-1>.0.*, .1.gamma|beta
      LN with norm.gamma|beta); k = 5: 7x7 conv to RGB, tanh            MUNIT: decoder_a.head.<k-1>.0.*, .1.gamma|beta
                                    enc_style.model.k.conv.*, k = 0..4  style_a.k.0.*
                                    enc_style.model.6.* (1x1 conv to    style_a.6.*
                                      the style code; 5 is the pool)
                                    mlp.model.k.fc.*, k = 0..2          mlp_a.<2k>.*

Buffers without weights: MUNIT's AdaIN layers register running_mean/running_var that they never use;
versions of both codes that built their instance norms with track_running_stats=True also saved running
statistics for them. The authors' current code normalises each image by its own statistics; so does
this loader, which drops those buffers (and says so for the instance norms).

What the tensors tell: width (the first convolution's outputs), residual blocks, style and MLP sizes,
input channels and the number of down-samplings (refused unless RGB and 2, the harness's networks).
What they do not: the padding (`pad_type` of the authors' configs: reflect in all of theirs, zero
possible), given as `pad_type`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from bench.core.config import TrainConfig
from bench.core.methods import Method, create_method
from bench.core.released import ReleasedFileError, register_released, train_config_for
from safeio.files import RUNNING_STATISTICS, describe_content, load_torch_file, strip_data_parallel_prefix

log = logging.getLogger("bench")

PAD_TYPES = ("reflect", "zero")
_CONTENT_ENCODER = {"unit": "enc", "munit": "enc_content"}
_FORMAT = {"unit": "UNIT gen_XXXXXXXX.pt (mingyuliutw/UNIT master)", "munit": "MUNIT gen_XXXXXXXX.pt (NVlabs/MUNIT)"}


class GenFileError(ReleasedFileError):
    """A gen file that is not the UNIT or MUNIT generator it was given as."""


@dataclass(frozen=True)
class GenArchitecture:
    method: str                  # "unit" or "munit"
    width: int                   # gen.dim
    n_res: int                   # gen.n_res
    style_dim: int | None        # MUNIT's gen.style_dim
    mlp_dim: int | None          # MUNIT's gen.mlp_dim
    running_statistics: bool     # instance norms saved with running statistics (dropped)

    def options(self) -> dict[str, int]:
        """This harness's method options for the same networks."""
        sizes = {"width": self.width, "n_res": self.n_res}
        if self.method == "munit":
            sizes.update(style_dim=self.style_dim, mlp_dim=self.mlp_dim)
        return sizes

    def describe(self) -> str:
        extra = f", style {self.style_dim}, MLP {self.mlp_dim}" if self.method == "munit" else ""
        return f"width {self.width}, {self.n_res} residual blocks{extra}"


def gen_file_method(content: Any) -> str | None:
    """"unit" or "munit" for a gen file's content, "discriminator" for a dis file, else None."""
    if not isinstance(content, dict) or not {"a", "b"} <= set(content) or not isinstance(content["a"], dict):
        return None
    keys = [str(k).removeprefix("module.") for k in content["a"]]
    if any(k.startswith("enc_content.") for k in keys):
        return "munit"
    if any(k.startswith("enc.") for k in keys) and any(k.startswith("dec.") for k in keys):
        return "unit"
    if any(k.startswith("cnns.") for k in keys):
        return "discriminator"
    return None


def read_gen_file(path: str | Path, expected: str, content: Any = None) -> dict[str, dict[str, torch.Tensor]]:
    """The two generators' state dicts of a gen file of `expected` ("unit" or "munit"), read with
    weights_only=True (or its `content`, already read); anything else is refused with what was found."""
    path = Path(path)
    if content is None:
        content = load_torch_file(path, f"{expected.upper()} generator file")
    found = gen_file_method(content)
    if found != expected:
        if found == "discriminator":
            what = "a discriminator file (dis_XXXXXXXX.pt); give the gen_XXXXXXXX.pt saved beside it"
        elif found is not None:
            what = f"a {found.upper()} generator file"
        else:
            inner = content["a"] if isinstance(content, dict) and isinstance(content.get("a"), dict) else content
            what = describe_content(inner)
        raise GenFileError(f"{path}: not a {expected.upper()} generator file (expected {{'a': ..., 'b': ...}} with the "
                           f"generators' state dicts, keys {_CONTENT_ENCODER[expected]}.model.0.conv.weight, ...; found {what})")
    return {domain: strip_data_parallel_prefix(content[domain]) for domain in ("a", "b")}


def _indices(state: dict[str, Any], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))})


def infer_architecture(states: dict[str, dict[str, torch.Tensor]], method: str, path: Path) -> GenArchitecture:
    """Width, residual blocks (and MUNIT's style and MLP sizes) from the tensors of both generators."""
    found = {domain: _domain_architecture(state, method, f"{path} [{domain!r}]") for domain, state in states.items()}
    if found["a"] != found["b"]:
        raise GenFileError(f"{path}: the two generators differ: a has {found['a'].describe()}, b has {found['b'].describe()}")
    return found["a"]


def _domain_architecture(state: dict[str, torch.Tensor], method: str, where: str) -> GenArchitecture:
    encoder = _CONTENT_ENCODER[method]
    first = state.get(f"{encoder}.model.0.conv.weight")
    if not isinstance(first, torch.Tensor) or first.dim() != 4 or tuple(first.shape[2:]) != (7, 7):
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else "absent"
        raise GenFileError(f"{where}: {encoder}.model.0.conv.weight is {shape}; a {method.upper()} generator's first "
                           "convolution is (width, 3, 7, 7)")
    if first.shape[1] != 3:
        raise GenFileError(f"{where}: the generator takes {first.shape[1]}-channel images (input_dim {first.shape[1]}); "
                           "this harness translates RGB images")
    downsamplings = _indices(state, rf"{re.escape(encoder)}\.model\.(\d+)\.conv\.weight")[1:]
    if downsamplings != [1, 2]:
        raise GenFileError(f"{where}: {len(downsamplings)} down-sampling convolutions (n_downsample {len(downsamplings)}); "
                           "this harness's UNIT and MUNIT have 2, as every configuration of the authors")
    n_res = len(_indices(state, rf"{re.escape(encoder)}\.model\.3\.model\.(\d+)\.model\.0\.conv\.weight"))
    style_dim = mlp_dim = None
    if method == "munit":
        style, mlp = state.get("enc_style.model.6.weight"), state.get("mlp.model.0.fc.weight")
        if not isinstance(style, torch.Tensor) or not isinstance(mlp, torch.Tensor) or style.dim() != 4 or mlp.dim() != 2:
            raise GenFileError(f"{where}: no style encoder output (enc_style.model.6.weight) or MLP input "
                               "(mlp.model.0.fc.weight) of the expected rank: not an AdaINGen")
        style_dim, mlp_dim = int(style.shape[0]), int(mlp.shape[0])
    adain = method == "munit"
    running = any(k.endswith(RUNNING_STATISTICS) and not (adain and k.startswith("dec.model.0.")) for k in state)
    return GenArchitecture(method, int(first.shape[0]), n_res, style_dim, mlp_dim, running)


def _key_rules(method: str, domain: str, n_res: int) -> list[tuple[str, Callable[..., str]]]:
    """(pattern of an authors' key, its key in the method's `networks`) for one domain's generator."""
    rules: list[tuple[str, Callable[..., str]]]
    if method == "unit":
        encoder, decoder = f"encoder_{domain}", f"decoder_{domain}"
        rules = [(r"dec\.model\.0\.model\.(\d+)\.model\.([01])\.conv\.(weight|bias)", lambda i, j, p: f"{decoder}.{i}.body.{j}.0.{p}"),
                 (r"dec\.model\.([245])\.conv\.(weight|bias)", lambda k, p: f"{decoder}.{n_res + int(k) - 1}.0.{p}"),
                 (r"dec\.model\.([24])\.norm\.(gamma|beta)", lambda k, p: f"{decoder}.{n_res + int(k) - 1}.1.{p}")]
    else:
        encoder, decoder, style, mlp = f"content_{domain}", f"decoder_{domain}", f"style_{domain}", f"mlp_{domain}"
        rules = [(r"dec\.model\.0\.model\.(\d+)\.model\.([01])\.conv\.(weight|bias)",
                  lambda i, j, p: f"{decoder}.blocks.{i}.conv{int(j) + 1}.{p}"),
                 (r"dec\.model\.([245])\.conv\.(weight|bias)", lambda k, p: f"{decoder}.head.{int(k) - 1}.0.{p}"),
                 (r"dec\.model\.([24])\.norm\.(gamma|beta)", lambda k, p: f"{decoder}.head.{int(k) - 1}.1.{p}"),
                 (r"enc_style\.model\.([0-4])\.conv\.(weight|bias)", lambda k, p: f"{style}.{k}.0.{p}"),
                 (r"enc_style\.model\.6\.(weight|bias)", lambda p: f"{style}.6.{p}"),
                 (r"mlp\.model\.(\d+)\.fc\.(weight|bias)", lambda k, p: f"{mlp}.{2 * int(k)}.{p}")]
    prefix = re.escape(_CONTENT_ENCODER[method])
    return rules + [(rf"{prefix}\.model\.([0-2])\.conv\.(weight|bias)", lambda k, p: f"{encoder}.{k}.0.{p}"),
                    (rf"{prefix}\.model\.3\.model\.(\d+)\.model\.([01])\.conv\.(weight|bias)",
                     lambda i, j, p: f"{encoder}.{3 + int(i)}.body.{j}.0.{p}")]


def to_project(state: dict[str, torch.Tensor], method: str, domain: str, n_res: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """One domain's generator as keys of the method's `networks`, and the authors' keys that map to
    nothing (the norm buffers are dropped silently: see the module docstring)."""
    rules = [(re.compile(pattern), target) for pattern, target in _key_rules(method, domain, n_res)]
    converted, unmapped = {}, []
    for key, value in state.items():
        if key.endswith(RUNNING_STATISTICS):
            continue
        for pattern, target in rules:
            if match := pattern.fullmatch(key):
                converted[target(*match.groups())] = value
                break
        else:
            unmapped.append(key)
    return converted, unmapped


def _use_zero_padding(modules: list[nn.Module]) -> None:
    """The authors' pad_type: zero. A convolution's padding mode is read at each call, so switching it
    gives the same network as their ZeroPad2d before an unpadded convolution."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                layer.padding_mode = "zeros"


def load_gen_file(method_name: str, gen: str | Path, device: str | torch.device, train: TrainConfig,
                  pad_type: str = "reflect", content: Any = None, **options: Any) -> Method:
    """A ready UNIT or MUNIT method from the authors' gen file. `options`: MUNIT's test-time options
    (test_style, test_samples, test_seed); the networks' sizes come from the file."""
    if pad_type not in PAD_TYPES:
        raise GenFileError(f"pad_type {pad_type!r}: expected one of {', '.join(PAD_TYPES)} (the authors' gen.pad_type)")
    path = Path(gen)
    states = read_gen_file(path, method_name, content)
    architecture = infer_architecture(states, method_name, path)
    if architecture.running_statistics:
        log.info("%s: instance norms saved with running statistics; they are dropped and each image is normalised by its own "
                 "statistics, as the authors' current code does", path)
    method = create_method(method_name, train=train, device=device, **architecture.options(), **options)
    converted, unmapped = {}, []
    for domain, state in states.items():
        domain_keys, domain_unmapped = to_project(state, method_name, domain, architecture.n_res)
        converted.update(domain_keys)
        unmapped += [f"{domain}: {key}" for key in domain_unmapped]
    where = f"{path}: does not fit a {method_name.upper()} generator of {architecture.describe()}"
    if unmapped:
        raise GenFileError(f"{where} (keys of no layer: {', '.join(unmapped[:4])})")
    try:
        missing, unexpected = method.networks.load_state_dict(converted, strict=False)
    except RuntimeError as error:   # a tensor of another shape
        raise GenFileError(f"{where} ({str(error).strip().splitlines()[-1].strip()[:300]})") from None
    missing = [key for key in missing if not key.startswith("dis_")]   # discriminators are not in a gen file
    if missing or unexpected:
        raise GenFileError(f"{where} (missing {missing[:4]}, unexpected {unexpected[:4]})")
    if pad_type == "zero":
        _use_zero_padding([module for name, module in method.networks.items() if not name.startswith("dis_")])
    return method


def inspect_gen_file(content: Any, path: Path) -> dict[str, Any]:
    """What `python -m bench.cli.released inspect` says about a gen or dis file's content."""
    method = gen_file_method(content)
    if method == "discriminator":
        return {"method": "unit or munit", "format": "UNIT/MUNIT multi-scale discriminators (dis_XXXXXXXX.pt; not needed "
                                                     "to translate)"}
    states = {domain: strip_data_parallel_prefix(content[domain]) for domain in ("a", "b")}
    architecture = infer_architecture(states, method, path)
    report = {"method": method, "format": _FORMAT[method], **architecture.options(),
              "running_statistics": architecture.running_statistics}
    return report


def inspect_gen_or_dis(content: Any, path: Path) -> dict[str, Any] | None:
    return inspect_gen_file(content, path) if gen_file_method(content) is not None else None


def _gen_file_loader(method_name: str) -> Callable[..., Method]:
    def load(gen: str | Path, device: str | torch.device = "cpu", image_size: int = 256, train: TrainConfig | None = None,
             pad_type: str = "reflect", content: Any = None, **test_options: Any) -> Method:
        return load_gen_file(method_name, gen, device, train_config_for(train, image_size), pad_type, content, **test_options)

    load.__name__ = f"load_{method_name}"
    return load


for _method_name in ("unit", "munit"):   # `pretrained: {gen: FILE, pad_type: reflect | zero}`
    register_released(_method_name, files=("gen",), inspect=inspect_gen_or_dis,
                      settings={"pad_type": PAD_TYPES})(_gen_file_loader(_method_name))
