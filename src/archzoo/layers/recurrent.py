"""Recurrent layers: Elman RNN (tanh / ReLU), LSTM and GRU — reference cells and PyTorch's fused kernels.

One parameter set, two paths (STYLE convention 1). The parameters are named, shaped, ordered and
initialised exactly like ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (``weight_ih_l0``, ``bias_hh_l1_reverse``;
LSTM gates i, f, g, o; GRU gates r, z, n), so ``load_state_dict(strict=True)`` works both ways.

- ``*_cell``: one time step, written from the equations (pure functions);
- ``recurrent_reference``: loops over layers, directions and time steps in Python, calling the cells;
- ``recurrent_fused``: ``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh`` / ``torch.rnn_relu``, the ops
  ``torch.nn`` calls (cuDNN on GPU), with packed sequences for variable lengths.

Every layer is batch-first by default (``batch_first=True``, unlike ``torch.nn``). Variable-length
batches pass ``lengths`` (B,): positions at or past a sequence's length give zero outputs and leave its
state alone, and a reverse direction starts at the sequence's own last valid step, exactly as
``torch.nn`` does on a ``PackedSequence``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from archzoo.errors import UserError
from archzoo.hardware import native_bf16
from archzoo.layers.impl import ImplSwitch

# One direction of one layer: (weight_ih, weight_hh, bias_ih, bias_hh); biases None when bias=False.
LayerWeights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]
State = Tensor | tuple[Tensor, Tensor]

MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


# ---------------------------------------------------------------------------------------------------
# Reference cells: one time step each.


def rnn_tanh_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """One step of the Elman (simple recurrent) network with a tanh nonlinearity.

    Math: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    Reference: Elman 1990, "Finding Structure in Time", Cognitive Science 14(2):179-211 (no arXiv);
        the hidden layer fed back through context units, Fig. 2.
    Shapes: x (B, I), h (B, H), w_ih (H, I), w_hh (H, H), b_ih b_hh (H,) -> h_t (B, H).
    Differs from paper: Elman's units were logistic and his net had one bias; PyTorch (followed here)
        uses tanh and two biases whose sum acts as one.
    """
    return torch.tanh(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))


def rnn_relu_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """One step of a simple recurrent network with a ReLU nonlinearity.

    Math: h_t = max(0, W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    Reference: Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
        Linear Units", arXiv:1504.00941 (the IRNN).
    Shapes: x (B, I), h (B, H), w_ih (H, I), w_hh (H, H), b_ih b_hh (H,) -> h_t (B, H).
    Differs from paper: the IRNN initialises W_hh to the identity and biases to zero; this layer
        initialises like torch.nn (uniform) — set the weights yourself for an IRNN.
    """
    return torch.relu(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))


def lstm_cell(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One step of the long short-term memory cell with a forget gate (gates i, f, g, o as PyTorch).

    Math: [i; f; g; o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh   (rows split in that order)
          i = σ(i), f = σ(f), g = tanh(g), o = σ(o)
          c_t = f ⊙ c_{t-1} + i ⊙ g
          h_t = o ⊙ tanh(c_t)
    Reference: Hochreiter & Schmidhuber 1997, "Long Short-Term Memory", Neural Computation 9(8):1735-1780
        (no arXiv); forget gate: Gers, Schmidhuber & Cummins 2000, "Learning to Forget: Continual
        Prediction with LSTM", Neural Computation 12(10):2451-2471 (no arXiv).
    Shapes: x (B, I), state = (h, c) each (B, H), w_ih (4H, I), w_hh (4H, H), b_ih b_hh (4H,)
        -> (h_t, c_t) each (B, H).
    Differs from paper: the 1997 cell has no forget gate (c_t = c_{t-1} + i ⊙ g) and squashes its
        input and output with scaled sigmoids; no peephole connections (Gers & Schmidhuber 2000);
        PyTorch's two biases sum to the paper's one.
    """
    h, c = state
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_t = f * c + i * g
    h_t = o * torch.tanh(c_t)
    return h_t, c_t


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    """One step of the gated recurrent unit (gates r, z, n in PyTorch's order).

    Math: r = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
          z = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
          n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    Reference: Cho, van Merriënboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio 2014, "Learning
        Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
        arXiv:1406.1078, Sec. 2.3, eqs. (5)-(8).
    Shapes: x (B, I), h (B, H), w_ih (3H, I), w_hh (3H, H), b_ih b_hh (3H,) -> h_t (B, H).
    Differs from paper: eq. (8) resets before the matmul, n = tanh(W x + U (r ⊙ h_{t-1})); PyTorch and
        cuDNN (followed here) reset after it, r ⊙ (W_hn h_{t-1} + b_hn), which lets one matmul serve
        all three gates. The two differ whenever r is not all ones.
    """
    gi_r, gi_z, gi_n = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    gh_r, gh_z, gh_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = torch.sigmoid(gi_r + gh_r)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + r * gh_n)
    return (1 - z) * n + z * h


CELLS = {"rnn_tanh": rnn_tanh_cell, "rnn_relu": rnn_relu_cell, "lstm": lstm_cell, "gru": gru_cell}


# ---------------------------------------------------------------------------------------------------
# Whole sequences: reference loop and fused kernels, same signature.


def _zero_state(mode: str, input: Tensor, num_states: int, hidden_size: int, batch_first: bool) -> State:
    batch = input.shape[0 if batch_first else 1]
    zeros = lambda: torch.zeros(num_states, batch, hidden_size, dtype=input.dtype, device=input.device)
    return (zeros(), zeros()) if mode == "lstm" else zeros()


def _directions(weights: Sequence[LayerWeights], bidirectional: bool) -> tuple[int, int]:
    """(num_layers, num_directions) from the flat per-(layer, direction) weight list."""
    d = 2 if bidirectional else 1
    if len(weights) == 0 or len(weights) % d:
        raise ValueError(f"need num_layers * {d} weight tuples, got {len(weights)}")
    return len(weights) // d, d


def recurrent_reference(mode: str, input: Tensor, hx: State | None, weights: Sequence[LayerWeights], *,
                        bidirectional: bool = False, dropout: float = 0.0, training: bool = False,
                        batch_first: bool = True, lengths: Tensor | None = None) -> tuple[Tensor, State]:
    """Run a stacked (bi)directional RNN / LSTM / GRU by looping over layers, directions and steps.

    Math: for layer l = 0..L-1 and direction d (forward t = 0..T-1, reverse t = T-1..0):
              s^{l,d}_t = cell(x^l_t, s^{l,d}_{t∓1})        (cell = ``CELLS[mode]``, s = h or (h, c))
          x^0 = input; x^{l+1}_t = dropout([h^{l,0}_t ; h^{l,1}_t]) (dropout only when training);
          with lengths: at t >= length_b, sequence b keeps s_{t∓1} and outputs 0, so the reverse
          direction starts from the initial state at t = length_b - 1.
          output = [h^{L-1,0} ; h^{L-1,1}], h_n[l*D + d] = the state after the last valid step.
    Reference: the cells' papers; stacking: Graves, Mohamed & Hinton 2013, "Speech Recognition with
        Deep Recurrent Neural Networks", arXiv:1303.5778, eqs. (11)-(12); bidirectional: Schuster &
        Paliwal 1997, "Bidirectional Recurrent Neural Networks", IEEE Trans. Signal Processing 45(11).
    Shapes: input (B, T, I) (or (T, B, I) when not batch_first), hx (L*D, B, H) or a pair of them for
        LSTM (None = zeros), weights: L*D tuples ordered layer-major, lengths (B,) in [1, T]
        -> output (B, T, D*H) (or (T, B, D*H)), h_n like hx.
    Differs from paper: inter-layer dropout follows torch.nn (Zaremba et al. 2014, arXiv:1409.2329,
        drop the non-recurrent connections), not the papers above.
    """
    cell = CELLS[mode]
    num_layers, num_dirs = _directions(weights, bidirectional)
    hidden_size = weights[0][1].shape[1]
    if hx is None:
        hx = _zero_state(mode, input, num_layers * num_dirs, hidden_size, batch_first)
    x = input if batch_first else input.transpose(0, 1)
    steps = x.shape[1]
    # valid[:, t] is True where step t belongs to the sequence; None means every step does.
    valid = None
    if lengths is not None:
        valid = torch.arange(steps, device=x.device) < lengths.to(x.device).unsqueeze(1)

    finals: list[State] = []
    for layer in range(num_layers):
        if layer > 0 and training and dropout > 0:
            x = F.dropout(x, dropout, training=True)
        outputs = []
        for direction in range(num_dirs):
            index = layer * num_dirs + direction
            state = (hx[0][index], hx[1][index]) if mode == "lstm" else hx[index]
            order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
            out: list[Tensor] = [None] * steps  # type: ignore[list-item]
            for t in order:
                new = cell(x[:, t], state, *weights[index])
                h = new[0] if mode == "lstm" else new
                if valid is not None:
                    keep = valid[:, t].unsqueeze(1)
                    new = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1])) \
                        if mode == "lstm" else torch.where(keep, new, state)
                    h = torch.where(keep, h, torch.zeros((), dtype=h.dtype, device=h.device))
                state = new
                out[t] = h
            outputs.append(torch.stack(out, dim=1))
            finals.append(state)
        x = torch.cat(outputs, dim=2) if num_dirs == 2 else outputs[0]

    output = x if batch_first else x.transpose(0, 1)
    if mode == "lstm":
        return output, (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals]))
    return output, torch.stack(finals)  # type: ignore[arg-type]


_FUSED_OPS = {"rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu, "lstm": torch.lstm, "gru": torch.gru}


def recurrent_fused(mode: str, input: Tensor, hx: State | None, weights: Sequence[LayerWeights], *,
                    bidirectional: bool = False, dropout: float = 0.0, training: bool = False,
                    batch_first: bool = True, lengths: Tensor | None = None) -> tuple[Tensor, State]:
    """``recurrent_reference`` computed by PyTorch's RNN kernels (cuDNN on GPU), same arguments and results.

    Math: as ``recurrent_reference``.
    Reference: as ``recurrent_reference``; the ops are ``torch.lstm`` / ``gru`` / ``rnn_tanh`` /
        ``rnn_relu`` (argument order as in torch/nn/modules/rnn.py).
    Shapes: as ``recurrent_reference``; with ``lengths`` the output is zero-padded back to T.
    """
    if mode == "lstm" and input.device.type == "cpu" and torch.is_autocast_enabled("cpu") \
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not native_bf16(input.device):
        # oneDNN builds no bf16 LSTM primitive on a CPU without native bf16 ("could not create a primitive
        # descriptor for the LSTM forward propagation primitive"): this layer runs in fp32 there
        with torch.autocast("cpu", enabled=False):
            state = None if hx is None else tuple(h.float() for h in hx)
            return recurrent_fused(mode, input.float(), state, weights, bidirectional=bidirectional, dropout=dropout,
                                   training=training, batch_first=batch_first, lengths=lengths)
    op = _FUSED_OPS[mode]
    num_layers, _ = _directions(weights, bidirectional)
    has_biases = weights[0][2] is not None
    flat = [w for layer in weights for w in layer if w is not None]
    if hx is None:
        hx = _zero_state(mode, input, len(weights), weights[0][1].shape[1], batch_first)
    if lengths is None:
        result = op(input, list(hx) if mode == "lstm" else hx, flat, has_biases, num_layers,
                    dropout, training, bidirectional, batch_first)
        return result[0], (result[1], result[2]) if mode == "lstm" else result[1]

    steps = input.shape[1 if batch_first else 0]
    packed = pack_padded_sequence(input, lengths.cpu(), batch_first=batch_first, enforce_sorted=False)
    # Packing sorts the batch by length; states follow that order in and back out.
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    states = [s.index_select(1, order) for s in (hx if mode == "lstm" else (hx,))]
    result = op(packed.data, packed.batch_sizes, states if mode == "lstm" else states[0], flat, has_biases,
                num_layers, dropout, training, bidirectional)
    output, _ = pad_packed_sequence(PackedSequence(result[0], packed.batch_sizes, order, unorder),
                                    batch_first=batch_first, total_length=steps)
    finals = [s.index_select(1, unorder) for s in result[1:]]
    return output, (finals[0], finals[1]) if mode == "lstm" else finals[0]


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """``x`` (B, T, F) with each row's first ``lengths[b]`` steps in reverse order and its padding left in place
    (an involution: applied twice it gives ``x`` back)."""
    t = torch.arange(x.shape[1], device=x.device)
    last = (lengths.to(x.device) - 1)[:, None]
    index = torch.where(t[None] <= last, last - t[None], t[None])  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


def recurrent_unpacked(mode: str, input: Tensor, weights: Sequence[LayerWeights], lengths: Tensor, *,
                       bidirectional: bool = False, dropout: float = 0.0, training: bool = False
                       ) -> tuple[Tensor, Tensor]:
    """``recurrent_fused`` with ``lengths`` from a zero state, without packing: the output and h_n only.

    Math: per layer, the forward direction runs over the whole padded row, whose valid steps never see
        the padding after them; the reverse direction runs forward over the row reversed within its
        length (``reverse_within_lengths``), so it too starts at the row's last valid step, and its
        outputs are reversed back. h_n is each direction's output at its last step in its own order
        (t = length - 1 forward, t = 0 reverse); padded steps output zeros.
    Why: packing sorts the batch by data-dependent lengths, which ``torch.export`` cannot trace; this
        form traces (at a fixed T: the RNN ops unroll over time) so a bidirectional classifier exports.
    Shapes: input (B, T, I) batch-first, lengths (B,) in [1, T] -> output (B, T, D*H), h_n (L*D, B, H);
        an LSTM's c_n is not computed (the padded steps have overwritten the forward direction's c).
    """
    num_layers, num_dirs = _directions(weights, bidirectional)
    t = torch.arange(input.shape[1], device=input.device)
    lengths = lengths.to(input.device)
    valid = (t[None] < lengths[:, None])[..., None]  # (B, T, 1)
    rows = torch.arange(input.shape[0], device=input.device)
    x, finals = input, []
    for layer in range(num_layers):
        if layer > 0 and training and dropout > 0:
            x = F.dropout(x, dropout, training=True)
        outputs = []
        for direction in range(num_dirs):
            layer_weights = [weights[layer * num_dirs + direction]]
            if direction == 0:
                out = recurrent_fused(mode, x, None, layer_weights)[0]
                finals.append(out[rows, lengths - 1])
            else:
                out = reverse_within_lengths(recurrent_fused(mode, reverse_within_lengths(x, lengths), None,
                                                             layer_weights)[0], lengths)
                finals.append(out[:, 0])
            outputs.append(out.masked_fill(~valid, 0.0))
        x = torch.cat(outputs, dim=2) if num_dirs == 2 else outputs[0]
    return x, torch.stack(finals)


# ---------------------------------------------------------------------------------------------------
# Modules: one parameter set, either path per call.


class _Recurrent(ImplSwitch, nn.Module):
    """Shared body of RNN, LSTM and GRU: torch.nn's parameters, argument checks and the impl switch."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 impl: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        name = type(self).__name__
        for key, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name}: {key} must be an integer >= 1, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout <= 1.0:
            raise UserError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout = float(dropout)
        self.impl = impl
        gate_size = GATES[mode] * hidden_size
        num_dirs = 2 if bidirectional else 1
        # Registration order is torch.nn's, so state_dict order and seeded initialisation match too.
        self._weight_names: list[tuple[str, ...]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * num_dirs
            for direction in range(num_dirs):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, hidden_size)}
                if self.bias:
                    shapes |= {"bias_ih": (gate_size,), "bias_hh": (gate_size,)}
                for key, shape in shapes.items():
                    self.register_parameter(key + suffix, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
                self._weight_names.append(tuple(key + suffix for key in shapes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as torch.nn."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        self.flatten_parameters()

    def layer_weights(self) -> list[LayerWeights]:
        """Per (layer, direction), layer-major: (weight_ih, weight_hh, bias_ih, bias_hh), None without bias."""
        out = []
        for names in self._weight_names:
            w = [getattr(self, n) for n in names]
            out.append((w[0], w[1], w[2], w[3]) if self.bias else (w[0], w[1], None, None))
        return out

    def flatten_parameters(self) -> None:
        """Lay the weights out in one cuDNN buffer (as torch.nn does) so the fused path need not copy them.

        A no-op off CUDA, without cuDNN, or for mixed dtypes; the parameters keep their names and shapes.
        """
        flat = [w for layer in self.layer_weights() for w in layer if w is not None]
        first = flat[0]
        if any(w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w) for w in flat):
            return
        if len({w.data_ptr() for w in flat}) != len(flat) or not torch._use_cudnn_rnn_flatten_weight():
            return
        from torch.backends.cudnn import rnn as cudnn_rnn

        with torch.cuda.device_of(first), torch.no_grad():
            torch._cudnn_rnn_flatten_weight(flat, 4 if self.bias else 2, self.input_size,
                                            cudnn_rnn.get_cudnn_mode(self.mode.upper()), self.hidden_size, 0,
                                            self.num_layers, self.batch_first, self.bidirectional)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self.flatten_parameters()  # .to(device) / .half() made new tensors; lay them out again
        return out

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode.startswith("rnn_"):
            s += f", nonlinearity={self.mode[4:]!r}"
        if not self.bias:
            s += ", bias=False"
        s += f", batch_first={self.batch_first}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + f", impl={self.impl!r}"

    def _check(self, input: Tensor, hx: State | None, lengths: Tensor | Sequence[int] | None) -> Tensor | None:
        """Raise a one-line UserError for a malformed call; return lengths as a tensor (or None)."""
        name, layout = type(self).__name__, "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if not isinstance(input, Tensor) or input.dim() != 3:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"{name} expects input of shape {layout} (batch_first={self.batch_first}), got {got}")
        if input.shape[-1] != self.input_size:
            raise UserError(f"{name} expects input of shape {layout} with input_size={self.input_size}, "
                            f"got {tuple(input.shape)}")
        weight = self.weight_ih_l0
        if input.device != weight.device or (input.dtype != weight.dtype
                                             and not torch.is_autocast_enabled(input.device.type)):
            raise UserError(f"{name} holds {weight.dtype} parameters on {weight.device}, got a {input.dtype} input on "
                            f"{input.device}; move one to the other (or run under torch.autocast)")
        batch, steps = (input.shape[0], input.shape[1]) if self.batch_first else (input.shape[1], input.shape[0])
        if steps < 1:
            raise UserError(f"{name} needs at least one time step, got input of shape {tuple(input.shape)}")
        if hx is not None:
            expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
            want = f"shape (num_layers * num_directions, B, hidden_size) = {expected}"
            if self.mode == "lstm":
                if not isinstance(hx, tuple | list) or len(hx) != 2 or not all(isinstance(s, Tensor) for s in hx):
                    raise UserError(f"{name} expects hx = (h_0, c_0), each of {want}, got {type(hx).__name__}")
                for key, s in zip(("h_0", "c_0"), hx, strict=True):
                    if tuple(s.shape) != expected:
                        raise UserError(f"{name} expects {key} of {want}, got {tuple(s.shape)}")
            elif not isinstance(hx, Tensor) or tuple(hx.shape) != expected:
                got = tuple(hx.shape) if isinstance(hx, Tensor) else type(hx).__name__
                raise UserError(f"{name} expects hx of {want}, got {got}")
        if lengths is None:
            return None
        if not isinstance(lengths, Tensor):
            try:
                lengths = torch.as_tensor(lengths)
            except (TypeError, ValueError, RuntimeError) as err:
                raise UserError(f"{name}: lengths must be a 1-D integer tensor of size B={batch}, got {lengths!r}") from err
        if lengths.dim() != 1 or lengths.numel() != batch or lengths.is_floating_point() or lengths.is_complex() \
                or lengths.dtype == torch.bool:
            raise UserError(f"{name}: lengths must be a 1-D integer tensor of size B={batch}, "
                            f"got {lengths.dtype} of shape {tuple(lengths.shape)}")
        if torch.compiler.is_exporting():  # an exported graph has no data-dependent checks
            return lengths
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > steps:
            raise UserError(f"{name}: every length must be in [1, T={steps}], got values in [{low}, {high}]")
        return lengths

    def forward_unpacked(self, input: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The output and h_n of ``forward(input, lengths=lengths)`` from a zero state, computed without
        packing so that ``torch.export`` can trace it (``recurrent_unpacked``); batch-first layers only."""
        if not self.batch_first:
            raise UserError(f"{type(self).__name__}.forward_unpacked needs a batch-first layer")
        lengths = self._check(input, None, lengths)
        return recurrent_unpacked(self.mode, input, self.layer_weights(), lengths, bidirectional=self.bidirectional,
                                  dropout=self.dropout, training=self.training)

    def _run(self, input: Tensor, hx: State | None, lengths: Tensor | Sequence[int] | None) -> tuple[Tensor, State]:
        lengths = self._check(input, hx, lengths)
        if isinstance(hx, list):
            hx = (hx[0], hx[1])
        compute = recurrent_fused if self.resolved_impl() == "fused" else recurrent_reference
        return compute(self.mode, input, hx, self.layer_weights(), bidirectional=self.bidirectional,
                       dropout=self.dropout, training=self.training, batch_first=self.batch_first, lengths=lengths)


def init_orthogonal_recurrent_(layer: _Recurrent, gain: float = 1.0) -> None:
    """Re-initialise every recurrent matrix of ``layer`` orthogonally: each gate's (H, H) block of each
    ``weight_hh`` becomes ``gain`` times a random orthogonal matrix (the input weights and biases keep
    torch.nn's initialisation).

    Math: W_hh^(g) = gain · Q, Q from the QR decomposition of a Gaussian matrix, so all singular
        values of the linear part of h_{t-1} -> h_t are ``gain``: backpropagated gradients neither
        shrink nor grow through W_hh itself (the nonlinearity's derivative still shrinks them).
    Reference: Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning in
        deep linear neural networks", arXiv:1312.6120; used for RNNs by Le, Jaitly & Hinton 2015,
        arXiv:1504.00941, and Henaff, Szlam & LeCun 2016, arXiv:1602.06662.
    """
    gates = GATES[layer.mode]
    with torch.no_grad():
        for names in layer._weight_names:
            weight_hh = getattr(layer, names[1])
            for block in weight_hh.chunk(gates, dim=0):
                nn.init.orthogonal_(block, gain=gain)
    layer.flatten_parameters()


class RNN(_Recurrent):
    """Stacked (bi)directional Elman RNN with tanh or ReLU; torch.nn.RNN's parameters, batch-first by default.

    Math: ``rnn_tanh_cell`` / ``rnn_relu_cell`` per step, stacked as in ``recurrent_reference``.
    Reference: Elman 1990 (tanh); Le, Jaitly & Hinton 2015, arXiv:1504.00941 (ReLU).
    Shapes: input (B, T, input_size) (or (T, B, ...) with batch_first=False), hx (L*D, B, H),
        lengths (B,) -> output (B, T, D*H), h_n (L*D, B, H).
    Differs from paper: see the cells.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 impl: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise UserError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, impl, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None,
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        return self._run(input, hx, lengths)  # type: ignore[return-value]


class LSTM(_Recurrent):
    """Stacked (bi)directional LSTM; torch.nn.LSTM's parameters (gates i, f, g, o), batch-first by default.

    Math: ``lstm_cell`` per step, stacked as in ``recurrent_reference``.
    Reference: Hochreiter & Schmidhuber 1997; forget gate Gers, Schmidhuber & Cummins 2000.
    Shapes: input (B, T, input_size) (or (T, B, ...) with batch_first=False), hx = (h_0, c_0) each
        (L*D, B, H), lengths (B,) -> output (B, T, D*H), (h_n, c_n) each (L*D, B, H).
    Differs from paper: see ``lstm_cell``; no ``proj_size``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 impl: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         impl, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None,
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return self._run(input, hx, lengths)  # type: ignore[return-value]


class GRU(_Recurrent):
    """Stacked (bi)directional GRU; torch.nn.GRU's parameters (gates r, z, n), batch-first by default.

    Math: ``gru_cell`` per step (reset gate after the matmul), stacked as in ``recurrent_reference``.
    Reference: Cho et al. 2014, arXiv:1406.1078, eqs. (5)-(8).
    Shapes: input (B, T, input_size) (or (T, B, ...) with batch_first=False), hx (L*D, B, H),
        lengths (B,) -> output (B, T, D*H), h_n (L*D, B, H).
    Differs from paper: r ⊙ (W_hn h + b_hn) rather than W (r ⊙ h); see ``gru_cell``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 impl: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         impl, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None,
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        return self._run(input, hx, lengths)  # type: ignore[return-value]
