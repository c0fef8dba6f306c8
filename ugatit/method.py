"""U-GAT-IT as a benchmark method: networks, optimizers, one training iteration, translation.

Options (the YAML's `options:` of `name: ugatit`) select the paper's model or a Table 1 ablation:
`norm` replaces the decoder's normalisation (see ugatit/normalization.py), `g_cam: false` removes
the generator's auxiliary classifier, attention and CAM loss, `d_cam: false` the discriminators'
(both: "w/o CAM"), and `preset` chooses the paper's, the official PyTorch code's or the official
TensorFlow code's details (ugatit/networks.py, PRESETS).

One training iteration (official code, UGATIT.py, and the same mathematics here):
  1. translate each real batch once; the same translations serve the discriminator update
     (detached) and the generator update. The official code runs the generators 8 times per
     iteration (2 in the discriminator step, whose loss it back-propagates into them only to discard
     those gradients, and 6 in the generator step); here they run 3 times: G_{A->B} on [x_A, x_B]
     (translation and identity) and on G_{B->A}(x_B) (the cycle), G_{B->A} once on
     [x_B, x_A, G_{A->B}(x_A)]: 6n images through a generator against 8n.
  2. update the four discriminators on real vs. detached fake images (Eq. 2 and 6);
  3. update both generators (Eq. 2-5, weighted as Eq. 7); the backward pass asks for the
     generators' gradients only, so no discriminator weight gradient is computed;
  4. clip every rho to [0, 1] (Eq. 1).
Spectral normalisation runs one power iteration per discriminator call: the discriminators see real
and fake images in one batch, so that is 2 per iteration here against 3 in the official code.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.config import TrainConfig
from bench.core.gan import adam, lsgan
from bench.core.methods import Method, check_direction, register_method
from bench.core.schedule import epoch_linear_decay, lr_multiplier, resolve_schedule, set_learning_rate
from ugatit.networks import NETWORK_NAMES, PRESETS, Generator, decayed_parameters
from ugatit.normalization import clamp_rho_
from ugatit.options import UGATITOptions, build_networks, network_preset, table1_label


@register_method("ugatit")
class UGATITMethod(Method):
    """U-GAT-IT; see the module docstring."""

    Options = UGATITOptions
    reference_schedule = "linear_decay"      # Appendix B.2: constant, then linear decay over the second half
    sample_columns = ("input", "G attention", "translation", "cycle", "local D attention", "global D attention")

    @classmethod
    def reference_iterations(cls, options: UGATITOptions, train_images: tuple[int, int] | None) -> int:
        return 1_000_000      # Appendix B.2

    @classmethod
    def check_settings(cls, options: UGATITOptions, train: TrainConfig) -> list[str]:
        problems = []
        size = options.image_size or train.image_size
        if options.image_size is not None and options.image_size != train.image_size:
            problems.append(f"options.image_size {options.image_size} differs from train.image_size {train.image_size}; "
                            "set only train.image_size")
        if size % 4:
            problems.append(f"image size {size} must be a multiple of 4 (two stride-2 down-samplings and two x2 "
                            "up-samplings must give back the input size), e.g. 64, 128 or 256")
        if options.width < 1 or options.n_res < 0:
            problems.append(f"width must be at least 1 and n_res at least 0 (got {options.width}, {options.n_res})")
        if options.preset == "official_tf" and options.n_res != 4 and options.norm in ("adalin", "adain"):
            problems.append(f"preset official_tf needs n_res 4 (got {options.n_res}): the TF code's MLP is ch * n_res wide "
                            "and its gamma, beta must match the 4 * ch channels of the bottleneck")
        if options.preset != "official_tf" and not options.smoothing:
            problems.append("smoothing: false is an option of preset official_tf (the TF code's --smoothing)")
        if options.epoch_iterations < 1:
            problems.append(f"epoch_iterations must be at least 1 (got {options.epoch_iterations})")
        if options.init_from is not None and not Path(options.init_from).is_file():
            problems.append(f"init_from: checkpoint file {options.init_from} not found")
        for name in ("adv_weight", "cycle_weight", "identity_weight", "cam_weight", "weight_decay"):
            if getattr(options, name) < 0:
                problems.append(f"{name} must not be negative")
        return problems

    @classmethod
    def check_files(cls, options: UGATITOptions) -> None:
        if options.init_from is not None:
            load_network_states(options.init_from)   # readable, and a U-GAT-IT checkpoint; its sizes are checked at build

    @classmethod
    def data_pipeline(cls, options: UGATITOptions) -> str:
        return PRESETS[options.preset].data_pipeline

    @classmethod
    def default_label(cls, options: UGATITOptions) -> str:
        return table1_label(options)

    @classmethod
    def tables(cls, options: UGATITOptions) -> tuple[str, ...]:
        is_paper_model = options.norm == "adalin" and options.g_cam and options.d_cam
        return ("table1", "table3") if is_paper_model else ("table1",)

    @classmethod
    def identity_options(cls, options: UGATITOptions, train: TrainConfig) -> dict[str, Any]:
        """image_size must equal train.image_size (which is in the identity); compile and channels_last
        change how the same arithmetic runs, not what it computes. A checkpoint to start from enters by
        its contents, not its path: another file under the same name is another run."""
        from safeio.files import cached_sha256_file

        plain = super().identity_options(options, train)
        for name in ("image_size", "compile", "channels_last"):
            plain.pop(name, None)
        if options.preset != "official_tf":   # options of that preset only
            plain.pop("smoothing", None)
            plain.pop("epoch_iterations", None)
        if options.init_from is not None and Path(options.init_from).is_file():
            plain["init_from"] = "sha256:" + cached_sha256_file(Path(options.init_from))
        return plain

    @classmethod
    def deviations(cls, options: UGATITOptions, train: TrainConfig) -> list[str]:
        paper = UGATITOptions()
        notes = []
        if options.light:
            notes.append("light U-GAT-IT (the gamma/beta MLP reads pooled features; paper: full)")
        if options.width != paper.width or options.n_res != paper.n_res:
            notes.append(f"reduced U-GAT-IT: width {options.width}, {options.n_res} residual blocks (paper: 64, 4)")
        if options.preset == "official_pytorch":
            notes.append("official PyTorch code's details (preset official_pytorch)")
        if options.preset == "official_tf":
            notes.append("official TensorFlow code's networks, schedule and data pipeline (preset official_tf)")
            if not options.smoothing:
                notes.append("AdaLIN without the TF code's smoothing (smoothing: false)")
        changed = [name for name in ("adv_weight", "cycle_weight", "identity_weight", "cam_weight", "lr", "weight_decay")
                   if getattr(options, name) != getattr(paper, name)]
        if changed or (train.lr is not None and train.lr != paper.lr):
            notes.append("changed hyper-parameters: " + ", ".join(changed or ["lr"]))
        return notes

    def __init__(self, options: UGATITOptions, train: TrainConfig, device: torch.device,
                 networks: dict[str, nn.Module] | None = None):
        """`networks`: the six networks already built and filled (a released-weights loader, ugatit/tf_released.py);
        networks left on the meta device (no storage) make a method that translates but does not train."""
        super().__init__(options, train, device)
        self.image_size = options.image_size or train.image_size
        self.preset = network_preset(options)
        if networks is None:
            networks = build_networks(options, self.image_size)
            self.networks = nn.ModuleDict(networks).to(self.device)
        else:
            self.networks = nn.ModuleDict(networks)
        self.translation_only = [name for name, network in self.networks.items()
                                 if any(p.is_meta for p in network.parameters())]
        self.use_cuda_speedups = self.device.type == "cuda"
        if options.channels_last and self.use_cuda_speedups:
            self.networks.to(memory_format=torch.channels_last)
        if options.init_from:
            try:
                self.load_networks(load_network_states(options.init_from))
            except RuntimeError as error:
                from bench.core.train import CheckpointError

                first_line = str(error).strip().splitlines()[0]
                raise CheckpointError(
                    f"init_from {options.init_from}: its networks do not fit these options ({first_line}). For an "
                    "official checkpoint, `python -m ugatit.compat inspect FILE` prints the options that fit."
                ) from None

        self.gen_a2b, self.gen_b2a = self.networks["genA2B"], self.networks["genB2A"]
        self.dis_global_a, self.dis_global_b = self.networks["disGA"], self.networks["disGB"]
        self.dis_local_a, self.dis_local_b = self.networks["disLA"], self.networks["disLB"]
        self.generators = (self.gen_a2b, self.gen_b2a)
        self.discriminators = (self.dis_global_a, self.dis_global_b, self.dis_local_a, self.dis_local_b)

        # Adam, betas (0.5, 0.999), lr 1e-4, weight decay 1e-4 (Appendix B.2).
        self.base_lr = train.lr if train.lr is not None else options.lr
        self.g_optim = self._adam(self.generators)
        self.d_optim = self._adam(self.discriminators)
        self.schedule = resolve_schedule(train, self.reference_schedule)
        self.rhos = [m.rho for g in self.generators for m in g.modules() if isinstance(getattr(m, "rho", None), nn.Parameter)]
        self.rho_names = [f"{direction}/{name}" for direction, g in (("a2b", self.gen_a2b), ("b2a", self.gen_b2a))
                          for name, m in g.named_modules() if isinstance(getattr(m, "rho", None), nn.Parameter)]
        self.g_parameters = [p for g in self.generators for p in g.parameters()]
        self.d_parameters = [p for d in self.discriminators for p in d.parameters()]
        # The training step calls these; state_dict() and the sample sheets use the modules themselves.
        self.run = {name: (torch.compile(module) if options.compile else module) for name, module in self.networks.items()}

    def _adam(self, networks: tuple[nn.Module, ...]) -> torch.optim.Optimizer:
        parameters = [p for network in networks for p in network.parameters()]
        if PRESETS[self.options.preset].decay_all_parameters:
            groups = [{"params": parameters, "weight_decay": self.options.weight_decay}]
        else:
            decayed = {id(p) for network in networks for p in decayed_parameters(network)}
            groups = [{"params": [p for p in parameters if id(p) in decayed], "weight_decay": self.options.weight_decay},
                      {"params": [p for p in parameters if id(p) not in decayed], "weight_decay": 0.0}]
        # Adam's weight_decay is coupled L2 (added to the gradient), as both official codes do.
        return adam(groups, lr=self.base_lr, betas=(0.5, 0.999))

    # ------------------------------------------------------------------------------------------
    # Training

    def set_step(self, step: int) -> None:
        train = self.train_config
        if self.preset.epoch_schedule and self.schedule == "linear_decay":
            # The TF code: lr set at the start of each epoch, constant until decay_epoch, then (N - e) / (N - decay_epoch).
            multiplier = epoch_linear_decay(step, train.iterations, self.options.epoch_iterations, train.decay_start)
        else:
            multiplier = lr_multiplier(step, train.iterations, self.schedule, train.decay_start)
        lr = self.base_lr * multiplier
        set_learning_rate(self.g_optim, lr)
        set_learning_rate(self.d_optim, lr)

    def _autocast(self):
        if self.options.amp and self.use_cuda_speedups:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last and self.use_cuda_speedups:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, Any]:
        if self.translation_only:
            raise RuntimeError(f"this U-GAT-IT was loaded without {', '.join(self.translation_only)}: it translates but "
                               "cannot train (load_released(..., discriminators=True) reads them)")
        o = self.options
        real_a, real_b = self._prepare(real_a), self._prepare(real_b)
        n = real_a.shape[0]

        # 1. Generators. G_{A->B} sees [x_A, x_B]: the translation, and the identity pass of Eq. 4
        #    (G_{s->t}(x_t) should give x_t back). G_{B->A} sees [x_B, x_A, G_{A->B}(x_A)]: translation,
        #    identity and the A -> B -> A cycle of Eq. 3. The B -> A -> B cycle needs G_{B->A}(x_B) first.
        run = self.run
        with self._autocast():
            out_ab, cam_ab, _ = run["genA2B"](torch.cat([real_a, real_b]))
            fake_a2b, identity_b = out_ab[:n], out_ab[n:]
            out_ba, cam_ba, _ = run["genB2A"](torch.cat([real_b, real_a, fake_a2b]))
            fake_b2a, identity_a, cycle_a = out_ba[:n], out_ba[n:2 * n], out_ba[2 * n:]
            cycle_b, _, _ = run["genA2B"](fake_b2a)

        # 2. Discriminators: LSGAN with real -> 1 and fake -> 0 on the patch logits (Eq. 2) and on the
        #    CAM logits of eta_D (Eq. 6), for the global and the local discriminator of each domain.
        #    (Eq. 2 as printed swaps the targets; this is the LSGAN objective the official code trains.)
        d_loss = torch.zeros((), device=self.device)
        with self._autocast():
            for name, real, fake in (("disGA", real_a, fake_b2a), ("disLA", real_a, fake_b2a),
                                     ("disGB", real_b, fake_a2b), ("disLB", real_b, fake_a2b)):
                logits, cam_logits, _ = run[name](torch.cat([real, fake.detach()]))
                d_loss = d_loss + lsgan(logits[:n], 1.0) + lsgan(logits[n:], 0.0)
                if cam_logits is not None:
                    d_loss = d_loss + lsgan(cam_logits[:n], 1.0) + lsgan(cam_logits[n:], 0.0)
        d_loss = o.adv_weight * d_loss
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward(inputs=self.d_parameters)
        self.d_optim.step()

        # 3. Generators, against the updated discriminators. The backward pass below asks for the
        #    generators' gradients only, so autograd skips the discriminators' weight gradients.
        adversarial = torch.zeros((), device=self.device)
        with self._autocast():
            for name, fake in (("disGA", fake_b2a), ("disLA", fake_b2a), ("disGB", fake_a2b), ("disLB", fake_a2b)):
                logits, cam_logits, _ = run[name](fake)
                adversarial = adversarial + lsgan(logits, 1.0)                      # Eq. 2, generator side
                if cam_logits is not None:
                    adversarial = adversarial + lsgan(cam_logits, 1.0)              # Eq. 6, generator side

        cycle = F.l1_loss(cycle_a.float(), real_a) + F.l1_loss(cycle_b.float(), real_b)           # Eq. 3
        identity = F.l1_loss(identity_a.float(), real_a) + F.l1_loss(identity_b.float(), real_b)  # Eq. 4
        cam = torch.zeros((), device=self.device)
        if cam_ab is not None:
            # Eq. 5: eta_s(x) is the probability that x comes from the generator's source domain:
            # 1 for the images it translates, 0 for the target-domain images of its identity pass.
            cam_ab, cam_ba = cam_ab.float(), cam_ba.float()
            cam = (F.binary_cross_entropy_with_logits(cam_ab[:n], torch.ones_like(cam_ab[:n]))
                   + F.binary_cross_entropy_with_logits(cam_ab[n:], torch.zeros_like(cam_ab[n:]))
                   + F.binary_cross_entropy_with_logits(cam_ba[:n], torch.ones_like(cam_ba[:n]))
                   + F.binary_cross_entropy_with_logits(cam_ba[n:2 * n], torch.zeros_like(cam_ba[n:2 * n])))
        g_loss = (o.adv_weight * adversarial + o.cycle_weight * cycle                         # Eq. 7
                  + o.identity_weight * identity + o.cam_weight * cam)
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward(inputs=self.g_parameters)
        self.g_optim.step()

        # 4. rho <- clip_[0,1](rho - tau * delta_rho) (Eq. 1): the clip, after the optimizer's update.
        clamp_rho_(self.rhos)

        return {"loss_D": d_loss.detach(), "loss_G": g_loss.detach(), "G_adversarial": adversarial.detach(),
                "G_cycle": cycle.detach(), "G_identity": identity.detach(), "G_cam": cam.detach()}

    def extra_stats(self) -> dict[str, float]:
        stats = {"lr": self.g_optim.param_groups[0]["lr"]}
        if self.rhos:
            means = torch.stack([rho.detach().float().mean() for rho in self.rhos]).tolist()
            stats.update({f"rho/{name}": value for name, value in zip(self.rho_names, means)})
        return stats

    # ------------------------------------------------------------------------------------------
    # Inference

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode (spectral norm stops its power iterations) and no gradients; restores the mode."""
        was_training = self.networks.training
        self.networks.eval()
        try:
            with torch.no_grad(), self._autocast():
                yield
        finally:
            self.networks.train(was_training)

    def generator(self, direction: str) -> Generator:
        check_direction(direction)
        return self.gen_a2b if direction == "a2b" else self.gen_b2a

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        with self.evaluating():
            return self.generator(direction)(self._prepare(images))[0].float()

    def translate_with_attention(self, images: torch.Tensor, direction: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The translation and the generator's attention heatmap (None without G_CAM)."""
        with self.evaluating():
            output, _, heatmap = self.generator(direction)(self._prepare(images))
            return output.float(), (heatmap.float() if heatmap is not None else None)

    def sample_sheet(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        from ugatit.samples import sample_sheet

        return sample_sheet(self, real_a, real_b)

    # ------------------------------------------------------------------------------------------
    # State

    def state_dict(self) -> dict[str, Any]:
        state = {name: self.networks[name].state_dict() for name in NETWORK_NAMES}
        state["G_optim"] = self.g_optim.state_dict()
        state["D_optim"] = self.d_optim.state_dict()
        return state

    def load_networks(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        for name in NETWORK_NAMES:
            self.networks[name].load_state_dict(states[name])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_networks(state)
        self.g_optim.load_state_dict(state["G_optim"])
        self.d_optim.load_state_dict(state["D_optim"])


def load_network_states(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The six networks' state dicts from a checkpoint of this harness or of the official PyTorch code."""
    from bench.core.train import describe_checkpoint, load_checkpoint
    from safeio.files import load_torch_file
    from ugatit.compat import is_official_checkpoint, official_to_project_states

    raw = load_torch_file(Path(path), "U-GAT-IT checkpoint")
    if is_official_checkpoint(raw):
        return official_to_project_states(raw)
    checkpoint = load_checkpoint(Path(path))
    if checkpoint["method"] != "ugatit":
        from bench.core.train import CheckpointError

        raise CheckpointError(f"{path}: a checkpoint of {describe_checkpoint(checkpoint)}, not of U-GAT-IT (ugatit)")
    return {name: checkpoint["method_state"][name] for name in NETWORK_NAMES}

