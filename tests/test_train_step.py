import pytest
import torch

from colorful_world.core.data import Batch

from colorful_world.core.config import TrainConfig
from colorful_world.nets.models import PatchDiscriminator, UNet
from colorful_world.core.runtime import Runtime
from colorful_world.training.train import learning_rate, train_step


@pytest.mark.parametrize("amp_dtype", [None, torch.bfloat16], ids=["float32", "bf16-autocast"])
@pytest.mark.parametrize("gan_phase", [False, True], ids=["l1-phase", "gan-phase"])
def test_one_step_updates_what_its_phase_trains(amp_dtype, gan_phase):
    torch.manual_seed(0)
    run = Runtime(torch.device("cpu"), amp_dtype)
    config = TrainConfig(arch="unet", image_size=32, depth=3, gan_mode="lsgan")
    G, D = UNet(8, 3), PatchDiscriminator(8, 3)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    g_before, d_before = [p.clone() for p in G.parameters()], [p.clone() for p in D.parameters()]

    logs = train_step(Batch.clean(torch.rand(4, 3, 32, 32)), G, D, opt_g, opt_d, scaler, config, gan_phase, run)

    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert set(logs) == ({"l1", "chroma", "skipped", "loss_d", "adversarial"} if gan_phase else {"l1", "chroma", "skipped"})
    assert logs["skipped"] == 0.0
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    d_moved = any(not torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    assert d_moved == gan_phase
    assert all(p.requires_grad for p in D.parameters())  # frozen only for G's half of the step


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    config = TrainConfig(epochs=4, lr_decay_epochs=2, lr=1e-3)
    rates = [learning_rate(config, step, steps_per_epoch=10) for step in range(40)]
    assert rates[:21] == [1e-3] * 21 and rates[30] == 0.5e-3 and 0 < rates[39] < rates[38] < rates[30]
    assert learning_rate(TrainConfig(epochs=4, lr=1e-3), 39, 10) == 1e-3  # no decay asked


def test_the_encoder_can_learn_slower_than_the_decoder():
    from colorful_world.training.state import build_training
    config = TrainConfig(image_size=32, encoder_weights="random", encoder_lr=0.1, hints=False)
    G, _, opt_g, _, _ = build_training(config, Runtime(torch.device("cpu"), None))
    decoder, encoder = opt_g.param_groups
    assert (decoder["lr_scale"], encoder["lr_scale"]) == (1.0, 0.1)
    assert {id(p) for p in encoder["params"]} == {id(p) for p in G.stages.parameters()}
    assert len(decoder["params"]) + len(encoder["params"]) == len(list(G.parameters()))
    with pytest.raises(ValueError, match="encoder_lr"):
        TrainConfig(encoder_lr=2.0).validate()
    # With hints, their new weights are a third group, at --hint-lr.
    G, _, opt_g, _, _ = build_training(TrainConfig(image_size=32, encoder_weights="random", hint_lr=7.0),
                                       Runtime(torch.device("cpu"), None))
    hint = opt_g.param_groups[2]
    assert hint["lr_scale"] == 7.0 and {id(p) for p in hint["params"]} == {id(p) for p in G.hint_parameters()}


def test_an_optimizer_saved_in_one_group_continues_in_two():
    from colorful_world.training.state import _in_groups, build_training
    config = TrainConfig(image_size=32, encoder_weights="random", encoder_lr=0.1, hints=False)
    G, _, opt_g, _, _ = build_training(config, Runtime(torch.device("cpu"), None))
    params = list(G.parameters())
    old = torch.optim.Adam(params, 1e-3)  # how runs saved it before --encoder-lr
    for p in params:
        p.grad = torch.randn_like(p)
    old.step()
    opt_g.load_state_dict(_in_groups(old.state_dict(), opt_g, params))
    for p in params:  # each parameter finds its own moments again
        assert torch.equal(opt_g.state[p]["exp_avg"], old.state[p]["exp_avg"])
    assert [g["lr_scale"] for g in opt_g.param_groups] == [1.0, 0.1]


def test_each_pixel_loss_is_zero_at_the_truth_and_grows_with_the_error():
    from colorful_world.core.color import rgb_to_model
    from colorful_world.training.train import pixel_loss
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 16, 16)
    l_norm, ab = rgb_to_model(rgb)
    for kind in ("l1", "mse", "rgb_mse"):
        losses = [pixel_loss(kind, torch.nn.functional.l1_loss(ab + shift, ab), ab + shift, ab, l_norm, rgb).item()
                  for shift in (0.0, 0.05, 0.1)]
        assert losses[0] < 1e-6 < losses[1] < losses[2], kind
        fake = (ab + 0.05).requires_grad_()
        pixel_loss(kind, torch.nn.functional.l1_loss(fake, ab), fake, ab, l_norm, rgb).backward()
        assert fake.grad.abs().sum() > 0, kind  # the loss trains the network
    # squared errors: twice the error, four times the loss (on ab exactly; on sRGB about, through the clipping)
    mse = [pixel_loss("mse", None, ab + shift, ab, l_norm, rgb).item() for shift in (0.05, 0.1)]
    assert mse[1] == pytest.approx(4 * mse[0])
    with pytest.raises(ValueError, match="pixel_loss"):
        TrainConfig(pixel_loss="l2").validate()


@pytest.mark.parametrize("gan_phase", [False, True], ids=["l1-phase", "gan-phase"])
@pytest.mark.parametrize("kind", ["mse", "rgb_mse"])
def test_a_step_with_a_squared_pixel_loss_moves_the_generator(kind, gan_phase):
    torch.manual_seed(0)
    config = TrainConfig(arch="unet", image_size=32, depth=3, pixel_loss=kind, chroma_weight=0.0)
    G, D = UNet(8, 3), PatchDiscriminator(8, 3)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    before = [p.clone() for p in G.parameters()]
    logs = train_step(Batch.clean(torch.rand(4, 3, 32, 32)), G, D, opt_g, opt_d, torch.amp.GradScaler("cpu", enabled=False),
                      config, gan_phase, Runtime(torch.device("cpu"), None))
    assert logs["skipped"] == 0.0 and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
