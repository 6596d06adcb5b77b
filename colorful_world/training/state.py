"""Everything a run's next step depends on besides its data, with one owner: the generator, the
discriminator, the generator's moving average, both optimizers, the grad scaler, the step, the
random state and the training time. A checkpoint is `TrainingState.state_dict()`, and
`load_state_dict` is the one reader of it: exact resume depends on the two agreeing.
"""

import copy

import torch

from colorful_world.core import runtime as rt
from colorful_world.core.config import ModelConfig, TrainConfig
from colorful_world.io.errors import ConfigError
from colorful_world.nets.model_file import load_model, upgrade_state
from colorful_world.nets.models import HINT_PARTS, EncoderUNet, PatchDiscriminator, build_generator


class TrainingState:
    def __init__(self, config: TrainConfig, runtime: rt.Runtime, pretrained: bool = True):
        """Built as the config describes; `pretrained`: the encoder's (or --init-from's) weights,
        for a new run (a continued one gets its own from its checkpoint)."""
        self.runtime = runtime
        self.G, self.D, self.opt_g, self.opt_d, self.scaler = build_training(config, runtime, pretrained)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.step = 0
        self.elapsed = 0.0  # seconds of training before this process: --max-minutes counts across resumes

    def state_dict(self, config: dict, steps_per_epoch: int, elapsed: float) -> dict:
        """The checkpoint: plain tensors and numbers (loads with weights_only=True)."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "ema": self.ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler": self.scaler.state_dict(), "step": self.step, "epoch": self.step // steps_per_epoch,
                "rng": _rng_state(self.runtime), "config": config, "elapsed": elapsed}

    def load_state_dict(self, state: dict) -> None:
        for part, key in ((self.G, "G"), (self.D, "D"), (self.ema, "ema"), (self.opt_d, "opt_d"),
                          (self.scaler, "scaler")):
            part.load_state_dict(state[key])
        self.opt_g.load_state_dict(_in_groups(state["opt_g"], self.opt_g, list(self.G.parameters())))
        _set_rng_state(state["rng"], self.runtime)
        self.step, self.elapsed = state["step"], state.get("elapsed", 0.0)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """EMA of the weights; buffers (BatchNorm statistics) are copied as they are."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def build_training(config: TrainConfig, runtime: rt.Runtime, pretrained: bool = True):
    """(G, D, their Adam optimizers, the grad scaler) as the config describes them, on the runtime's
    device (channels_last on CUDA); the scaler only works under fp16. `pretrained`: load the
    encoder's weights (a resumed run gets its own from the checkpoint instead)."""
    G = build_generator(config.model(), config.encoder_weights if pretrained and not config.init_from else "random")
    if pretrained and config.init_from:
        start_from(G, config)
    G = G.to(runtime.device)
    D = PatchDiscriminator(config.disc_channels, config.disc_layers).to(runtime.device)
    if runtime.device.type == "cuda":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    # The pretrained encoder may learn slower than the decoder, so that long training on faces
    # keeps more of what ImageNet taught it ("lr_scale" is read where the rate is set each step).
    # The hint weights are new beside trained ones: they learn faster (--hint-lr), or alone (--hints-only).
    encoder = {id(p) for p in G.stages.parameters()} if isinstance(G, EncoderUNet) else set()
    hint = {id(p) for p in G.hint_parameters()} if getattr(G, "hints", False) else set()
    groups = [{"params": [p for p in G.parameters() if id(p) not in encoder | hint], "lr_scale": 1.0},
              {"params": [p for p in G.parameters() if id(p) in encoder], "lr_scale": config.encoder_lr},
              {"params": [p for p in G.parameters() if id(p) in hint], "lr_scale": config.hint_lr}]
    if config.hints_only:
        G.requires_grad_(False)
        for p in G.hint_parameters():
            p.requires_grad_(True)
        groups = groups[2:]
    opt_g = torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    return G, D, opt_g, opt_d, scaler


def model_gain(config: TrainConfig) -> float:
    """The chroma gain a run trains under: --hints-only trains the hints of its --init-from
    model as that model colorizes (hints divided by its gain, its colour scaled by it); 1 otherwise."""
    if not config.hints_only:
        return 1.0
    return init_model(config)[1].get("chroma_gain", 1.0)


def init_model(config: TrainConfig) -> tuple[dict, dict, dict]:
    """The model --init-from names ("bundled": the package's): its weights, config and provenance."""
    return load_model(None if config.init_from == "bundled" else config.init_from)


def train_network_modes(G: torch.nn.Module, config: TrainConfig) -> None:
    """G in training mode, but under --hints-only its frozen network in eval mode: BatchNorm's
    statistics must not move either."""
    G.train()
    if config.hints_only:
        for name, module in G.named_children():
            module.train(f"{name}." in HINT_PARTS)


def start_from(G: torch.nn.Module, config: TrainConfig) -> None:
    """Fine-tuning: the generator of config.init_from ("bundled": the package's model) loaded
    into G; weights G has and the model lacks (the hint weights) keep their start."""
    state, saved, _ = init_model(config)
    mine = config.model()
    theirs = ModelConfig.from_dict(saved)
    if (theirs.arch, theirs.encoder, theirs.base_channels, theirs.max_channels, theirs.depth) != \
            (mine.arch, mine.encoder, mine.base_channels, mine.max_channels, mine.depth):
        raise ConfigError(f"--init-from {config.init_from}: its network ({theirs.arch}, {theirs.encoder or 'no encoder'}, "
                          f"width {theirs.base_channels}-{theirs.max_channels}) is not this run's; give the same "
                          "--arch, --encoder, --base-channels and --max-channels")
    missing, unexpected = G.load_state_dict(upgrade_state(state, saved), strict=False)
    if unexpected or any(not key.startswith(HINT_PARTS) for key in missing):
        raise ConfigError(f"--init-from {config.init_from}: its weights do not fit this network "
                          f"({len(missing)} missing, {len(unexpected)} unexpected)")


def _in_groups(saved: dict, optimizer: torch.optim.Optimizer, params: list) -> dict:
    """A generator's optimizer state saved with all its parameters in one group (as before
    --encoder-lr) arranged into `optimizer`'s groups, so that such a run still continues."""
    if len(saved["param_groups"]) != 1 or len(optimizer.param_groups) == 1:
        return saved
    old_index = {id(p): i for i, p in enumerate(params)}  # one group: indices in parameters() order
    state, groups, index = {}, [], 0
    for group in optimizer.param_groups:
        indices = []
        for p in group["params"]:
            if old_index[id(p)] in saved["state"]:
                state[index] = saved["state"][old_index[id(p)]]
            indices.append(index)
            index += 1
        groups.append(saved["param_groups"][0] | {"params": indices, "lr_scale": group["lr_scale"]})
    return {"state": state, "param_groups": groups}


def _rng_state(runtime: rt.Runtime) -> dict:
    state = {"torch": torch.get_rng_state()}
    if runtime.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(runtime.device)
    return state


def _set_rng_state(state: dict, runtime: rt.Runtime) -> None:
    torch.set_rng_state(state["torch"])
    if runtime.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], runtime.device)
