"""The run-vectorized LSTM/GRU learner against torch.nn.LSTM/GRU and plain autograd loops."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lopcore.learners.recurrent import CELLS, Recurrent, replace_recurrent_units_
from lopcore.sequences import PAD, Sequences

N_IN, HIDDEN, N_OUT, BATCH, T = 5, 8, 3, 4, 6
CELL_NAMES = sorted(CELLS)


def sequence_batches(seed, steps, runs=1, ragged=True):
    """Random float sequences with lengths in [1, T] (or all T); the label is learnable: the
    argmax of the first step's first N_OUT features."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(steps, runs, BATCH, T, N_IN, generator=g)
    lengths = (
        torch.randint(1, T + 1, (steps, runs, BATCH), generator=g) if ragged else torch.full((steps, runs, BATCH), T)
    )
    ys = xs[..., 0, :N_OUT].argmax(-1)
    return xs, lengths, ys


class Reference(nn.Module):
    """The textbook model: nn.LSTM / nn.GRU on packed sequences, nn.Linear on the final hidden state."""

    def __init__(self, cell, n_in=N_IN):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(n_in, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, N_OUT)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        h = h[0] if isinstance(h, tuple) else h
        return self.head(h[0])

    def load_from(self, state, run=0):
        p = state["params"]
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(p["w_ih"][run].T)
            self.rnn.weight_hh_l0.copy_(p["w_hh"][run].T)
            self.rnn.bias_ih_l0.copy_(p["b_ih"][run, 0])
            self.rnn.bias_hh_l0.copy_(p["b_hh"][run, 0])
            self.head.weight.copy_(p["w_out"][run].T)
            self.head.bias.copy_(p["b_out"][run, 0])
        return self


def losses_of(learner, state, xs, lengths, ys):
    """Per-step mean losses of run 0, read from the learner's on-device accumulator."""
    out = []
    for x, n, y in zip(xs, lengths, ys):
        before = state["loss_sum"].clone()
        learner.step(state, Sequences(x, n), y)
        out.append((state["loss_sum"] - before)[0].item())
    return torch.tensor(out)


def reference_losses(model, opt, xs, lengths, ys):
    out = []
    for x, n, y in zip(xs[:, 0], lengths[:, 0], ys[:, 0]):
        loss = F.cross_entropy(model(x, n), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return torch.tensor(out)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_logits_match_torch_modules(cell):
    learner = Recurrent(cell=cell, hidden=HIDDEN, optimizer="sgd", lr=0.1)
    state = learner.init_state([3, 4], N_IN, N_OUT, "cpu")
    xs, lengths, _ = sequence_batches(0, 1, runs=2)
    logits = learner.logits(state, Sequences(xs[0], lengths[0]))
    for run in range(2):
        expected = Reference(cell).load_from(state, run)(xs[0, run], lengths[0, run])
        torch.testing.assert_close(logits[run], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loss_trajectory_matches_autograd_loop(cell, optimizer):
    lr = 0.1 if optimizer == "sgd" else 0.01
    learner = Recurrent(cell=cell, hidden=HIDDEN, optimizer=optimizer, lr=lr)
    state = learner.init_state([7], N_IN, N_OUT, "cpu")
    model = Reference(cell).load_from(state)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    xs, lengths, ys = sequence_batches(1, 100)
    ours, theirs = losses_of(learner, state, xs, lengths, ys), reference_losses(model, opt, xs, lengths, ys)
    assert theirs[-20:].mean() < theirs[:20].mean()  # it learns, so the comparison is not vacuous
    assert (ours - theirs).abs().max() < 1e-5
    torch.testing.assert_close(state["params"]["w_hh"][0], model.rnn.weight_hh_l0.detach().T, atol=1e-5, rtol=0)


def trained(learner, seeds, xs, lengths, ys) -> dict:
    """The state of runs `seeds` after one step on each batch (steps, runs, ...)."""
    state = learner.init_state(seeds, N_IN, N_OUT, "cpu")
    for x, n, y in zip(xs, lengths, ys):
        learner.step(state, Sequences(x, n), y)
    return state


def together_and_alone(learner, seeds, xs, lengths, ys) -> tuple[dict, list[dict]]:
    """The runs trained together, and each trained alone on its own slice of the same batches."""
    alone = [
        trained(learner, [seed], xs[:, r : r + 1], lengths[:, r : r + 1], ys[:, r : r + 1])
        for r, seed in enumerate(seeds)
    ]
    return trained(learner, seeds, xs, lengths, ys), alone


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_runs_are_independent(optimizer):
    learner = Recurrent(cell="lstm", hidden=HIDDEN, optimizer=optimizer, lr=0.05)
    together, each = together_and_alone(learner, [11, 12, 13], *sequence_batches(2, 20, runs=3))
    for r, alone in enumerate(each):
        for name, p in alone["params"].items():
            torch.testing.assert_close(together["params"][name][r], p[0], atol=1e-6, rtol=0)
        assert together["correct"][r] == alone["correct"][0]
        torch.testing.assert_close(together["loss_sum"][r], alone["loss_sum"][0])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_padding_never_touches_the_state(cell):
    learner = Recurrent(cell=cell, hidden=HIDDEN, optimizer="sgd", lr=0.1)
    state = learner.init_state([5], N_IN, N_OUT, "cpu")
    x = torch.randn(1, 1, 3, N_IN)
    padded = torch.cat([x, 100 * torch.randn(1, 1, 4, N_IN)], 2)  # loud junk after the end
    short = learner.logits(state, Sequences(x, torch.tensor([[3]])))
    long = learner.logits(state, Sequences(padded, torch.tensor([[3]])))
    torch.testing.assert_close(short, long, atol=1e-6, rtol=0)  # not bitwise: the bmm shapes differ
    assert not torch.allclose(long, learner.logits(state, padded))  # and the junk would matter
    empty = learner.logits(state, Sequences(padded, torch.tensor([[0]])))  # no valid step: h stays h0 = 0
    torch.testing.assert_close(empty, state["params"]["b_out"], atol=1e-6, rtol=0)


def test_tokens_are_a_one_hot_input_and_pad_gets_no_gradient():
    learner = Recurrent(cell="gru", hidden=HIDDEN, optimizer="sgd", lr=0.1)
    state = learner.init_state([9], PAD + 1, N_OUT, "cpu")
    tokens = torch.randint(0, 256, (1, BATCH, T))
    lengths = torch.tensor([[6, 2, 4, 1]])
    tokens[0, 1, 2:] = PAD
    tokens[0, 2, 4:] = PAD
    tokens[0, 3, 1:] = PAD
    one_hot = F.one_hot(tokens, PAD + 1).float()
    torch.testing.assert_close(
        learner.logits(state, Sequences(tokens, lengths)),
        learner.logits(state, Sequences(one_hot, lengths)),
        atol=1e-6,
        rtol=0,
    )
    pad_row = state["params"]["w_ih"][0, PAD].clone()
    learner.step(state, Sequences(tokens, lengths), torch.tensor([[0, 1, 2, 0]]))
    assert torch.equal(state["params"]["w_ih"][0, PAD], pad_row)


def test_bare_tensor_input_means_full_length():
    learner = Recurrent(cell="lstm", hidden=HIDDEN)
    state = learner.init_state([1, 2], N_IN, N_OUT, "cpu")
    x = torch.randn(2, BATCH, T, N_IN)
    assert torch.equal(learner.logits(state, x), learner.logits(state, (x, torch.full((2, BATCH), T))))
    (h,) = learner.hidden_activations(state, x)
    assert h.shape == (2, BATCH, HIDDEN)


@pytest.mark.parametrize(
    "bad",
    [
        dict(hidden=0),
        dict(hidden=2.5),
        dict(cell="rnn"),
        dict(lr=0.0),
        dict(lr=-1.0),
        dict(optimizer="rmsprop"),
        dict(betas=(0.9, 1.0)),
    ],
)
def test_invalid_options_are_rejected(bad):
    with pytest.raises(ValueError):
        Recurrent(**bad)


# --- replacing whole hidden units (continual backprop) ---


def changed_entries(before: dict, after: dict) -> dict:
    return {name: before[name] != after[name] for name in before}


def expected_changes(params, cell, units):
    """Masks of the entries a replacement of `units` (list per run) may touch."""
    G, H = CELLS[cell], HIDDEN
    masks = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in params.items()}
    for r, js in enumerate(units):
        for j in js:
            cols = [g * H + j for g in range(G)]
            for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
                masks[name][r][:, cols] = True
            masks["w_hh"][r, j, :] = True
            masks["w_out"][r, j, :] = True
    return masks


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_replacement_touches_exactly_the_units_entries(cell):
    learner = Recurrent(cell=cell, hidden=HIDDEN, optimizer="adam", lr=0.01)
    state = learner.init_state([1, 2], N_IN, N_OUT, "cpu")
    xs, lengths, ys = sequence_batches(3, 3, runs=2)
    for x, n, y in zip(xs, lengths, ys):  # give Adam some state to reset
        learner.step(state, Sequences(x, n), y)
    before = {k: v.clone() for k, v in state["params"].items()}
    idx = torch.tensor([[1, 5], [6, 0]])
    rngs = [torch.Generator().manual_seed(s) for s in (1, 2)]
    replace_recurrent_units_(learner.hidden_units(state), idx, rngs, adam=state["adam"])
    allowed = expected_changes(before, cell, idx.tolist())
    for name, changed in changed_entries(before, state["params"]).items():
        assert not (changed & ~allowed[name]).any(), name
    for name in ("w_ih", "b_ih", "b_hh"):  # every gate column was redrawn
        assert changed_entries(before, state["params"])[name].sum() == allowed[name].sum()
    p = state["params"]
    for r, js in enumerate(idx.tolist()):
        for j in js:
            assert (p["w_out"][r, j] == 0).all()
            own = [g * HIDDEN + j for g in range(CELLS[cell])]
            others = [c for c in range(CELLS[cell] * HIDDEN) if c not in own]
            assert (p["w_hh"][r, j, others] == 0).all()  # feeds no other unit
            assert (p["w_hh"][r, j, own] != 0).all()  # its self-connections are fresh incoming weights
            for name in ("w_ih", "w_hh"):
                assert (state["adam"][name]["t"][r][:, own] == 0).all()
            assert (state["adam"]["w_out"]["m"][r, j] == 0).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_replacing_a_unit_with_zero_outgoing_weights_keeps_outputs(cell):
    learner = Recurrent(cell=cell, hidden=HIDDEN, optimizer="sgd", lr=0.1)
    state = learner.init_state([4, 5], N_IN, N_OUT, "cpu")
    idx = torch.tensor([[2], [7]])
    p = state["params"]
    for r, j in enumerate(idx[:, 0].tolist()):  # silence the units' outgoing weights (not their self-loops)
        own = [g * HIDDEN + j for g in range(CELLS[cell])]
        keep = p["w_hh"][r, j, own].clone()
        p["w_hh"][r, j] = 0.0
        p["w_hh"][r, j, own] = keep
        p["w_out"][r, j] = 0.0
    xs, lengths, _ = sequence_batches(4, 1, runs=2)
    seqs = Sequences(xs[0], lengths[0])
    before = learner.logits(state, seqs)
    rngs = [torch.Generator().manual_seed(s) for s in (1, 2)]
    replace_recurrent_units_(learner.hidden_units(state), idx, rngs)
    torch.testing.assert_close(learner.logits(state, seqs), before, atol=1e-6, rtol=0)
    assert not torch.equal(
        learner.hidden_activations(state, seqs)[0],
        learner.hidden_activations(learner.init_state([4, 5], N_IN, N_OUT, "cpu"), seqs)[0],
    )


def test_mean_correction_moves_the_units_contribution_into_the_biases():
    learner = Recurrent(cell="gru", hidden=HIDDEN, optimizer="sgd", lr=0.1)
    state = learner.init_state([3], N_IN, N_OUT, "cpu")
    p = state["params"]
    j, mean = 4, 0.3
    expected_out = p["b_out"][0, 0] + mean * p["w_out"][0, j]
    expected_hh = p["b_hh"][0, 0] + mean * p["w_hh"][0, j]
    own = [g * HIDDEN + j for g in range(3)]
    replace_recurrent_units_(
        learner.hidden_units(state),
        torch.tensor([[j]]),
        [torch.Generator().manual_seed(0)],
        mean_hidden=torch.tensor([[mean]]),
    )
    torch.testing.assert_close(p["b_out"][0, 0], expected_out)
    others = [c for c in range(3 * HIDDEN) if c not in own]  # own entries are then redrawn
    torch.testing.assert_close(p["b_hh"][0, 0, others], expected_hh[others])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on CUDA")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_step_never_syncs_with_the_host(optimizer):
    learner = Recurrent(cell="lstm", hidden=HIDDEN, optimizer=optimizer)
    state = learner.init_state([0, 1], PAD + 1, N_OUT, "cuda")
    tokens = torch.randint(0, 256, (2, BATCH, T), device="cuda")
    lengths = torch.randint(0, T + 1, (2, BATCH), device="cuda")
    y = torch.randint(0, N_OUT, (2, BATCH), device="cuda")
    idx = torch.tensor([[1], [2]], device="cuda")
    rngs = [torch.Generator(device="cuda").manual_seed(s) for s in (0, 1)]
    learner.step(state, Sequences(tokens, lengths), y)  # warm-up: lazy CUDA initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        learner.step(state, Sequences(tokens, lengths), y)
        replace_recurrent_units_(learner.hidden_units(state), idx, rngs, adam=state.get("adam"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
