"""The classic mitigations (L2, Shrink & Perturb, dropout, Adam) as options of the vectorized MLP:
hand-computed tiny cases, autograd / torch.optim references, run independence, validation, and
the store keys of results computed before the options existed."""

import pytest
import torch
from test_learners import N_IN, N_OUT, ReferenceMLP, batches, engine_losses
from torch.nn import functional as F

from lopcore.frames import learner_from_dict
from lopcore.learners import Backprop, ContinualBackprop, PersistentState
from lopcore.learners.cbp import replace_units_
from lopcore.learners.mitigations import dropout_masks, run_generators
from lopcore.spec import RunSpec
from lopcore.store import spec_key


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def params_of(state):
    return [p.clone() for pair in zip(state["weights"], state["biases"]) for p in pair]


def autograd_grads(learner, state, x, y):
    """Gradients of run 0's batch-mean cross-entropy, [dW_0, db_0, ...] in the learner's layout."""
    params = [p[0].clone().requires_grad_() for p in params_of(state)]
    a = x[0]
    for i in range(0, len(params) - 2, 2):
        a = F.relu(a @ params[i] + params[i + 1])
    F.cross_entropy(a @ params[-2] + params[-1], y[0]).backward()
    return [p.grad for p in params]


def one_step(learner, seed=0, n_in=6, batch=4):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(1, batch, n_in, generator=g), torch.randint(0, 3, (1, batch), generator=g)
    state = learner.init_state([seed], n_in, 3, "cpu")
    before = params_of(state)
    grads = autograd_grads(learner, state, x, y)
    learner.step(state, x, y)
    return before, grads, params_of(state)


# --- store keys ---------------------------------------------------------------------------------


def test_results_stored_before_the_mitigations_keep_their_keys():
    keys = {
        spec_key(RunSpec(learner).to_dict())
        for learner in (
            Backprop(lr=0.05),
            PersistentState(lr=0.05, d_int=128, n=2),
            ContinualBackprop(lr=0.05, replacement_rate=1e-4),
        )
    }
    assert keys == {"9f151c7615ca6ee66582", "a6ff4e223edf2a78b206", "021c55ac7724d43c54c5"}
    assert spec_key(RunSpec(Backprop(weight_decay=0, dropout=0.0, optimizer="sgd")).to_dict()) == "9f151c7615ca6ee66582"


MITIGATED = [
    Backprop(weight_decay=1e-4),
    Backprop(weight_decay=1e-3),
    Backprop(shrink=1e-4, noise_std=1e-3),
    Backprop(noise_std=1e-3),
    Backprop(dropout=0.1),
    Backprop(optimizer="adam", lr=1e-3),
    Backprop(optimizer="adam", lr=1e-3, betas=(0.9, 0.99)),
    Backprop(optimizer="adam", lr=1e-3, eps=1e-6),
    ContinualBackprop(optimizer="adam", lr=1e-3),
    ContinualBackprop(weight_decay=1e-4),
]


def test_runs_with_mitigations_get_their_own_keys_and_round_trip():
    baseline = {spec_key(RunSpec(learner).to_dict()) for learner in (Backprop(), ContinualBackprop())}
    keys = {spec_key(RunSpec(learner).to_dict()) for learner in MITIGATED}
    assert len(keys) == len(MITIGATED) and not keys & baseline
    for learner in MITIGATED:
        assert learner_from_dict(RunSpec(learner).to_dict()["learner"]) == learner


# --- L2 and Shrink & Perturb ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [dict(weight_decay=0.0), dict(shrink=0.0, noise_std=0.0), dict(dropout=0.0)], ids=str
)
def test_options_at_zero_are_plain_sgd_bit_for_bit(options):
    xs, ys = batches(0, steps=30, runs=2)
    base, base_state = engine_losses(Backprop(), xs, ys, seeds=(0, 1))
    ours, state = engine_losses(Backprop(**options), xs, ys, seeds=(0, 1))
    assert torch.equal(base, ours)
    assert all(torch.equal(a, b) for a, b in zip(params_of(base_state), params_of(state)))


def test_l2_step_by_hand(float64):
    lr, lam = 0.1, 0.5
    before, grads, after = one_step(Backprop(lr=lr, hidden=(5,), weight_decay=lam))
    for p0, g, p1 in zip(before, grads, after):  # weights and biases both decay
        torch.testing.assert_close(p1[0], p0[0] - lr * (g + lam * p0[0]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.05), ("adam", 1e-3)])
def test_shrink_perturb_without_noise_is_l2(optimizer, lr):
    xs, ys = batches(1, steps=40, runs=2)
    l2, l2_state = engine_losses(Backprop(lr=lr, optimizer=optimizer, weight_decay=1e-2), xs, ys, seeds=(0, 1))
    sp, sp_state = engine_losses(Backprop(lr=lr, optimizer=optimizer, shrink=1e-2), xs, ys, seeds=(0, 1))
    assert torch.equal(l2, sp)
    assert all(torch.equal(a, b) for a, b in zip(params_of(l2_state), params_of(sp_state)))


def test_perturbation_is_gaussian_per_parameter_and_per_run(float64):
    sigma, learner = 0.01, Backprop(lr=0.0, noise_std=0.01)  # lr 0: the step only perturbs
    x, y = torch.rand(3, 8, N_IN), torch.randint(0, N_OUT, (3, 8))
    state = learner.init_state([0, 1, 0], N_IN, N_OUT, "cpu")
    before = params_of(state)
    learner.step(state, x, y)
    noise = [p1 - p0 for p0, p1 in zip(before, params_of(state))]
    flat = torch.cat([n.flatten(1) for n in noise], 1)  # (R, #parameters): biases are perturbed too
    assert all((n.abs() > 0).all() for n in noise)
    assert abs(flat[0].std().item() / sigma - 1) < 0.02
    assert abs(flat[0].mean().item()) < 3 * sigma / flat.shape[1] ** 0.5
    assert torch.equal(flat[0], flat[2]) and not torch.allclose(flat[0], flat[1])  # a function of the seed only


def test_shrink_and_perturb_step_by_hand(float64):
    lr, lam, sigma = 0.1, 0.5, 0.01
    before, grads, after = one_step(Backprop(lr=lr, hidden=(5,), shrink=lam, noise_std=sigma))
    _, _, no_noise = one_step(Backprop(lr=lr, hidden=(5,), shrink=lam))
    noise = torch.cat([(p1 - p0).flatten() for p0, p1 in zip(no_noise, after)])
    g = run_generators([0], "perturb", "cpu")[0]
    torch.testing.assert_close(noise, sigma * torch.randn(noise.numel(), generator=g), rtol=0, atol=1e-12)
    for p0, gr, p1 in zip(before, grads, no_noise):
        torch.testing.assert_close(p1[0], p0[0] - lr * (gr + lam * p0[0]), rtol=0, atol=1e-12)


# --- dropout --------------------------------------------------------------------------------------


def test_dropout_masks_are_deterministic_per_seed_and_differ_between_runs():
    like = torch.zeros(1)
    masks = dropout_masks(run_generators([0, 1, 0], "dropout", "cpu"), 64, (100, 50), 0.25, like)
    again = dropout_masks(run_generators([0, 1, 0], "dropout", "cpu"), 64, (100, 50), 0.25, like)
    assert [m.shape for m in masks] == [(3, 64, 100), (3, 64, 50)]
    assert all(torch.equal(a, b) for a, b in zip(masks, again))
    for m in masks:
        assert torch.equal(m.unique(), torch.tensor([0.0, 1 / 0.75]))
        assert torch.equal(m[0], m[2]) and not torch.equal(m[0], m[1])
        assert abs((m == 0).double().mean().item() - 0.25) < 0.03


def test_dropout_matches_autograd_with_the_same_masks(float64):
    p, lr, steps = 0.3, 0.05, 40
    learner = Backprop(lr=lr, dropout=p)
    xs, ys = batches(2, steps=steps)
    model = ReferenceMLP()
    model.load_from(learner, learner.init_state([0], N_IN, N_OUT, "cpu"))
    rngs, ref = run_generators([0], "dropout", "cpu"), []
    for x, y in zip(xs[:, 0], ys[:, 0]):
        masks = dropout_masks(rngs, x.shape[0], learner.hidden, p, x)
        a = x
        for layer, m in zip(model.body, masks):
            a = F.relu(layer(a)) * m[0]
        loss = F.cross_entropy(model.head(a), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for q in model.parameters():
                q -= lr * q.grad
        ref.append(loss.item())
    ours, _ = engine_losses(learner, xs, ys)
    assert (ours[:, 0] - torch.tensor(ref)).abs().max() < 1e-9


def test_test_time_predictions_use_no_dropout():
    learner = Backprop(dropout=0.5)
    state = learner.init_state([0], N_IN, N_OUT, "cpu")
    x = torch.rand(1, 16, N_IN)
    plain = Backprop().logits(state, x)
    assert torch.equal(learner.logits(state, x), plain) and torch.equal(learner.logits(state, x), plain)
    assert torch.equal(learner.hidden_activations(state, x)[0], Backprop().hidden_activations(state, x)[0])


# --- Adam -----------------------------------------------------------------------------------------


def test_adam_first_step_is_minus_lr_times_sign_of_the_gradient(float64):
    lr = 1e-3
    before, grads, after = one_step(Backprop(lr=lr, hidden=(5,), optimizer="adam"))
    for p0, g, p1 in zip(before, grads, after):
        step = p1[0] - p0[0]
        big = g.abs() > 1e-4  # |g| / (|g| + ε) = 1 up to ε / |g|
        assert big.any()
        torch.testing.assert_close(step[big], -lr * g[big].sign(), rtol=0, atol=lr * 1e-4)
        assert (step[g == 0] == 0).all()


@pytest.mark.parametrize("options", [dict(), dict(weight_decay=1e-2), dict(betas=(0.8, 0.99), eps=1e-6)], ids=str)
def test_adam_matches_torch_optim_adam(options):
    lr, steps = 1e-3, 100
    learner = Backprop(lr=lr, optimizer="adam", **options)
    xs, ys = batches(3, steps=steps)
    model = ReferenceMLP()
    model.load_from(learner, learner.init_state([0], N_IN, N_OUT, "cpu"))
    opt = torch.optim.Adam(
        model.parameters(),
        lr=lr,
        betas=learner.betas,
        eps=learner.eps,
        weight_decay=learner.weight_decay,
        foreach=False,
    )
    ref = []
    for x, y in zip(xs[:, 0], ys[:, 0]):
        loss = F.cross_entropy(model(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.append(loss.item())
    ours, _ = engine_losses(learner, xs, ys)
    assert (ours[:, 0] - torch.tensor(ref)).abs().max() < 1e-5


def test_adam_state_is_reset_for_replaced_units_only():
    learner = ContinualBackprop(optimizer="adam", lr=1e-3)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    xs, ys = batches(4, steps=5, runs=2)
    for x, y in zip(xs, ys):
        learner.step(state, x, y)
    adam = state["adam"]
    before = [t.clone() for t in adam["m"] + adam["v"]]
    idx = torch.tensor([[3, 7], [5, 7]])  # units of hidden layer 1, per run
    replace_units_(
        learner.hidden_units(state)[1],
        idx,
        state["gnt"],
        1,
        learner.decay,
        learner.init,
        moments=learner.optimizer_units(state)[1],
    )
    assert adam["t"] == 5  # the step count is kept
    for moments, old in ((adam["m"], before[:8]), (adam["v"], before[8:])):
        w_in, b_in, w_out = moments[2], moments[3], moments[4]
        for r, units in enumerate(idx.tolist()):
            assert (w_in[r][:, units] == 0).all() and (b_in[r][0, units] == 0).all() and (w_out[r][units] == 0).all()
            keep = [j for j in range(100) if j not in units]
            assert torch.equal(w_in[r][:, keep], old[2][r][:, keep]) and torch.equal(w_out[r][keep], old[4][r][keep])
        assert (old[2].abs() > 0).any()
        for k in (0, 1, 5, 6, 7):  # other layers (and the next layer's bias) untouched
            assert torch.equal(moments[k], old[k])


def test_cbp_with_adam_replaces_units_and_keeps_running():
    learner = ContinualBackprop(optimizer="adam", lr=1e-3, replacement_rate=0.02, maturity=20)
    xs, ys = batches(5, steps=120)
    losses, state = engine_losses(learner, xs, ys)
    assert (state["gnt"]["birth"][0] >= 0).sum() > 20 and losses.isfinite().all()


# --- every option: runs independent of their group mates ------------------------------------------


@pytest.mark.parametrize("learner", MITIGATED[::2] + [Backprop(shrink=1e-3, noise_std=1e-2, dropout=0.2)], ids=str)
def test_vectorized_runs_equal_separate_runs(learner):
    seeds = (3, 5, 7)
    xs, ys = batches(6, steps=40, runs=3)
    together, _ = engine_losses(learner, xs, ys, seeds=seeds)
    for r, seed in enumerate(seeds):
        alone, _ = engine_losses(learner, xs[:, r : r + 1], ys[:, r : r + 1], seeds=(seed,))
        torch.testing.assert_close(
            together[:, r], alone[:, 0], rtol=0, atol=1e-5
        )  # float32 sums regroup with the batch shape and thread count


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(weight_decay=-1e-3), r"weight_decay must be a finite number >= 0"),
        (dict(shrink=float("inf")), r"shrink must be a finite number >= 0"),
        (dict(noise_std=-0.1), r"noise_std must be a finite number >= 0"),
        (dict(weight_decay=1e-3, shrink=1e-3), r"not both"),
        (dict(lr=0.5, weight_decay=2.0), r"lr \* \(weight_decay \+ shrink\) must be < 1"),
        (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
        (dict(dropout=-0.1), r"dropout must be a probability in \[0, 1\)"),
        (dict(optimizer="rmsprop"), r"optimizer must be one of \('sgd', 'adam'\)"),
        (dict(betas=(0.9, 1.0)), r"betas must be two numbers \(β1, β2\), each in \[0, 1\)"),
        (dict(betas=(0.9,)), r"betas must be two numbers"),
        (dict(eps=0.0), r"eps must be a finite number > 0"),
    ],
)
@pytest.mark.parametrize("cls", [Backprop, ContinualBackprop])
def test_options_are_validated(cls, options, message):
    with pytest.raises(ValueError, match=message):
        cls(**options)


def test_checkpointed_state_resumes_bit_identically():
    from lopcore import checkpoint as ckpt

    learner = ContinualBackprop(
        optimizer="adam", lr=1e-3, shrink=1e-3, noise_std=1e-3, dropout=0.1, **{"replacement_rate": 0.02, "maturity": 5}
    )
    xs, ys = batches(7, steps=30, runs=2)
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    for x, y in zip(xs[:15], ys[:15]):
        learner.step(state, x, y)
    resumed = ckpt.restore_state_(learner.init_state([0, 1], N_IN, N_OUT, "cpu"), ckpt.pack_state(state))
    for x, y in zip(xs[15:], ys[15:]):
        learner.step(state, x, y)
        learner.step(resumed, x, y)
    assert all(torch.equal(a, b) for a, b in zip(params_of(state), params_of(resumed)))


# --- online normalization ---------------------------------------------------------------------


class ControlNorm(torch.autograd.Function):
    """Chiley et al.'s normalization of one layer (batch, width), written the plain way: a loop over
    examples and over units with scalar recursions. `stats` holds lists [μ, σ², u, v] per unit."""

    @staticmethod
    def forward(ctx, z, stats, a_fwd, a_bkw):
        y, scales = torch.empty_like(z), torch.empty_like(z)
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                mu, var = stats[j][0], stats[j][1]
                scales[i, j] = (var + 1e-5) ** 0.5
                y[i, j] = (z[i, j] - mu) / scales[i, j]
                stats[j][1] = a_fwd * var + a_fwd * (1 - a_fwd) * (z[i, j] - mu) ** 2
                stats[j][0] = a_fwd * mu + (1 - a_fwd) * z[i, j]
        ctx.saved = (y, scales, stats, a_bkw)
        return y

    @staticmethod
    def backward(ctx, dy):
        y, scales, stats, a_bkw = ctx.saved
        dz = torch.empty_like(dy)
        for i in range(dy.shape[0]):
            for j in range(dy.shape[1]):
                g = dy[i, j] - (1 - a_bkw) * stats[j][3] * y[i, j]
                stats[j][3] = stats[j][3] + g * y[i, j]
                dz[i, j] = g / scales[i, j] - (1 - a_bkw) * stats[j][2]
                stats[j][2] = stats[j][2] + dz[i, j]
        return dz, None, None, None


def test_online_norm_matches_a_plain_reference(float64):
    lr, steps, hidden = 0.05, 12, (7, 5)
    learner = Backprop(lr=lr, hidden=hidden, online_norm=True, norm_alpha_fwd=0.9, norm_alpha_bkw=0.8)
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.rand(steps, 1, 4, 6, generator=g), torch.randint(0, 3, (steps, 1, 4), generator=g)
    state = learner.init_state([0], 6, 3, "cpu")
    layers = [
        (w[0].clone().requires_grad_(), b[0, 0].clone().requires_grad_())
        for w, b in zip(state["weights"], state["biases"])
    ]
    affine = [(torch.ones(h, requires_grad=True), torch.zeros(h, requires_grad=True)) for h in hidden]
    stats = [[[0.0, 1.0, 0.0, 0.0] for _ in range(h)] for h in hidden]
    ref = []
    for x, y in zip(xs[:, 0], ys[:, 0]):
        a = x
        for (w, b), (gamma, beta), st in zip(layers, affine, stats):
            a = F.relu(gamma * ControlNorm.apply(a @ w + b, st, 0.9, 0.8) + beta)
        loss = F.cross_entropy(a @ layers[-1][0] + layers[-1][1], y)
        params = [p for pair in layers + affine for p in pair]
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        ref.append(loss.item())
    ours = []
    for x, y in zip(xs, ys):
        before = state["loss_sum"].clone()
        learner.step(state, x, y)
        ours.append((state["loss_sum"] - before).item())
    assert (torch.tensor(ours) - torch.tensor(ref)).abs().max() < 1e-9
    for (w, _b), ours_w in zip(layers, state["weights"]):
        torch.testing.assert_close(ours_w[0], w.detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(state["norm"]["gamma"][1][0, 0], affine[1][0].detach(), rtol=0, atol=1e-9)
    torch.testing.assert_close(state["norm"]["var"][0][0, 0], torch.tensor([s[1] for s in stats[0]]), rtol=0, atol=1e-9)
    torch.testing.assert_close(
        state["norm"]["v"][1][0, 0], torch.tensor([float(s[3]) for s in stats[1]]), rtol=0, atol=1e-9
    )


def test_online_norm_normalizes_a_stationary_stream():
    learner = Backprop(lr=0.0, online_norm=True)  # lr 0: a fixed network, a stationary stream of pre-activations
    state = learner.init_state([0, 1], N_IN, N_OUT, "cpu")
    g = torch.Generator().manual_seed(1)
    scale = torch.rand(N_IN, generator=g) * 3  # inputs far from normalized
    for _ in range(1500):  # 12000 examples, 12 time constants of α_f = 0.999
        x, y = torch.rand(2, 8, N_IN, generator=g) * scale + 1, torch.randint(0, N_OUT, (2, 8), generator=g)
        learner.step(state, x, y)
    x = torch.rand(2, 4000, N_IN, generator=g) * scale + 1
    z = torch.baddbmm(state["biases"][0], x, state["weights"][0])
    assert ((z.var(1) - 1).abs() > 0.5).all()  # the raw pre-activations are far from normalized
    y = (z - state["norm"]["mean"][0]) / (state["norm"]["var"][0] + 1e-5).sqrt()
    assert y.mean(1).abs().max() < 0.2 and ((y.var(1) - 1).abs() < 0.2).all()
    assert torch.allclose(learner.hidden_activations(state, x)[0], torch.relu(y), atol=1e-5)  # test time: no update


def test_online_norm_options_are_validated_and_keyed():
    for options in (dict(online_norm=1), dict(online_norm=True, norm_alpha_fwd=1.0), dict(norm_alpha_bkw=0.0)):
        with pytest.raises(ValueError, match="online_norm must be True or False|must be a decay in \\(0, 1\\)"):
            Backprop(**options)
    with pytest.raises(ValueError, match="online_norm is not supported with continual backprop"):
        ContinualBackprop(online_norm=True)
    keys = {
        spec_key(RunSpec(learner).to_dict())
        for learner in (Backprop(), Backprop(online_norm=True), Backprop(online_norm=True, norm_alpha_fwd=0.99))
    }
    assert len(keys) == 3


@pytest.mark.parametrize(
    "learner",
    [
        Backprop(online_norm=True),
        Backprop(online_norm=True, optimizer="adam", lr=1e-3, dropout=0.1, shrink=1e-3, noise_std=1e-3),
    ],
    ids=str,
)
def test_online_norm_runs_are_independent_of_their_group(learner):
    seeds = (3, 5)
    xs, ys = batches(8, steps=25, runs=2)
    together, _ = engine_losses(learner, xs, ys, seeds=seeds)
    for r, seed in enumerate(seeds):
        alone, _ = engine_losses(learner, xs[:, r : r + 1], ys[:, r : r + 1], seeds=(seed,))
        torch.testing.assert_close(together[:, r], alone[:, 0], rtol=0, atol=1e-5)  # as above


def test_stored_runs_with_tuple_options_become_tidy_rows():
    from lopcore.frames import frame

    spec = RunSpec(Backprop(optimizer="adam", lr=1e-3, betas=(0.8, 0.99))).to_dict()
    spec["learner"]["betas"] = list(spec["learner"]["betas"])  # as read back from JSON
    df = frame({"spec": spec, "metrics": {"task": [0, 1, 2]}, "provenance": {}, "key": "k"})
    assert df["betas"].tolist() == ["0.8, 0.99"] * 3 and df["optimizer"].tolist() == ["adam"] * 3
