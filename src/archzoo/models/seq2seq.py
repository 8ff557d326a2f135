"""Encoder-decoder translation models: Sutskever's LSTM, Cho's GRU with a context vector, Bahdanau's
attention and the Transformer.

The contract (tasks/translation.py trains through it, tasks/decoding.py decodes through it):
- ``forward(src (B, S), tgt_in (B, T), sample_mask=None)`` -> logits (B, T, V): the decoder reads the
  true previous tokens ``tgt_in`` (teacher forcing), or its own previous prediction where
  ``sample_mask`` is True (a teacher-forcing ratio below 1);
- ``encode(src)`` -> memory, ``start(memory)`` -> the decoder state before the first token, and
  ``step(memory, state, tokens (B,), need_weights)`` -> (logits (B, V), new state, attention weights
  or None): one decoder step, for greedy and beam search.
Memory and state are tuples of batch-first tensors, so a beam search reorders them with one
``index_select`` each (``select_rows``). Ids: ``pad_id`` pads on the right, the source ends in EOS,
``tgt_in`` starts with BOS (data/translation.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM, Dropout, Linear
from archzoo.layers.attention import AdditiveAttention
from archzoo.layers.norm import LayerNorm
from archzoo.layers.positional import SinusoidalPositionalEncoding
from archzoo.layers.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from archzoo.models.base import BATCH, ExportGraph, check_dropout, check_widths
from archzoo.models.registry import register_model
from archzoo.vocab import BOS_ID, EOS_ID, PAD_ID

Tensors = tuple[Tensor, ...]


def select_rows(tensors: Tensors, index: Tensor) -> Tensors:
    """Rows ``index`` of every batch-first tensor: reorders beams, or repeats each source K times."""
    return tuple(t.index_select(0, index) for t in tensors)


class DeepOutput(nn.Module):
    """The RNN decoders' output layer: a maxout hidden layer over the decoder state, the context and the
    previous word's embedding, then the softmax projection; ``maxout_size`` 0 gives one linear layer.

    Math: t̃ = W_t [s_t; c_t; E y_{t-1}] + b;  t_j = max(t̃_{2j-1}, t̃_{2j}), j = 1..l;  logits = W_o t + b_o
    Reference: Bahdanau et al. 2015, arXiv:1409.0473, Appendix A.2.2 (deep output with a single maxout
        hidden layer, l = 500), after Cho et al. 2014, arXiv:1406.1078, Appendix A.1; maxout: Goodfellow
        et al. 2013, arXiv:1302.4389.
    Shapes: (..., in_features) -> logits (..., vocab_size).
    The l-unit bottleneck also makes the vocabulary projection l/in_features as costly as a linear layer's.
    """

    def __init__(self, in_features: int, maxout_size: int, vocab_size: int):
        super().__init__()
        self.maxout_size = maxout_size
        self.hidden = Linear(in_features, 2 * maxout_size) if maxout_size else None
        self.proj = Linear(maxout_size or in_features, vocab_size)

    def forward(self, features: Tensor) -> Tensor:
        if self.hidden is not None:
            features = self.hidden(features).unflatten(-1, (self.maxout_size, 2)).amax(-1)
        return self.proj(features)


class EncoderDecoder(nn.Module):
    """Base of the translation models: checks the ids, runs teacher forcing or scheduled sampling
    through ``step``, and offers ``example_inputs``. Subclasses define ``encode``, ``start``, ``step``
    and, where the whole target can run at once, a faster ``teacher_forced``."""

    attention_kind = "none"  # "additive" (weights (B, S) per step) | "multihead" ((B, L, H, S)) | "none"

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
        super().__init__()
        if min(src_vocab_size, tgt_vocab_size) < 5:
            raise UserError(f"{type(self).__name__} needs vocabularies of >= 5 ids (4 specials and a word), "
                            f"got {src_vocab_size} and {tgt_vocab_size}")
        ids = (pad_id, bos_id, eos_id)
        if len(set(ids)) != 3 or min(ids) < 0 or max(ids) >= min(src_vocab_size, tgt_vocab_size):
            raise UserError(f"{type(self).__name__}: pad_id, bos_id and eos_id must be distinct ids of both vocabularies, "
                            f"got {ids}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    def check_ids(self, ids: Tensor, vocab_size: int, what: str) -> Tensor:
        """The padding mask (B, L) of right-padded ids; malformed ids raise one line."""
        if ids.dim() != 2 or ids.dtype != torch.long or ids.shape[1] < 1:
            raise UserError(f"{type(self).__name__} takes {what} ids of shape (B, L) (int64), got {tuple(ids.shape)} "
                            f"{ids.dtype}")
        mask = ids != self.pad_id
        if torch.compiler.is_exporting():  # an exported graph has no data-dependent checks
            return mask
        if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
            raise UserError(f"{what} ids must lie in [0, {vocab_size}), got [{int(ids.min())}, {int(ids.max())}]; "
                            "was the input encoded with this run's tokenizer?")
        if not mask[:, 0].all():
            raise UserError(f"every {what} sentence needs at least one token, padded on the right")
        return mask

    def encode(self, src: Tensor) -> Tensors:
        raise NotImplementedError

    def start(self, memory: Tensors) -> Tensors:
        raise NotImplementedError

    def step(self, memory: Tensors, state: Tensors, tokens: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensors, Tensor | None]:
        raise NotImplementedError

    def teacher_forced(self, memory: Tensors, tgt_in: Tensor) -> Tensor:
        """Logits (B, T, V) of the decoder reading ``tgt_in``; by default one ``step`` per position."""
        state, logits = self.start(memory), []
        for t in range(tgt_in.shape[1]):
            out, state, _ = self.step(memory, state, tgt_in[:, t])
            logits.append(out)
        return torch.stack(logits, dim=1)

    def forward(self, src: Tensor, tgt_in: Tensor, sample_mask: Tensor | None = None) -> Tensor:
        """Teacher forcing (Williams & Zipser 1989); where ``sample_mask`` (B, T) is True the decoder
        reads its own previous greedy prediction instead (scheduled sampling, Bengio et al. 2015,
        arXiv:1506.03099), which is how a teacher-forcing ratio r < 1 is trained."""
        self.check_ids(tgt_in, self.tgt_vocab_size, "target")
        memory = self.encode(src)
        if sample_mask is None or not bool(sample_mask[:, 1:].any()):
            return self.teacher_forced(memory, tgt_in)
        state, logits, tokens = self.start(memory), [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            out, state, _ = self.step(memory, state, tokens)
            logits.append(out)
            if t + 1 < tgt_in.shape[1]:
                tokens = torch.where(sample_mask[:, t + 1], out.argmax(-1), tgt_in[:, t + 1])
        return torch.stack(logits, dim=1)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        """Random sources (row 0 full, the others shorter, each ending in EOS) and BOS-led targets."""
        S, T = 7, 6
        first_word = max(self.pad_id, self.bos_id, self.eos_id) + 1
        src = torch.randint(first_word, self.src_vocab_size, (batch_size, S))
        lengths = torch.tensor([S] + [2 + (b * 2) % (S - 1) for b in range(1, batch_size)])[:batch_size]
        src[torch.arange(batch_size), lengths - 1] = self.eos_id
        src = src.masked_fill(torch.arange(S)[None] >= lengths[:, None], self.pad_id)
        tgt = torch.randint(first_word, self.tgt_vocab_size, (batch_size, T))
        tgt[:, 0] = self.bos_id
        return src, tgt


def source_lengths(mask: Tensor) -> Tensor:
    return mask.sum(1)


class LSTMSeq2Seq(EncoderDecoder):
    """Sequence to sequence with stacked LSTMs: the encoder's final states start the decoder.

    Math: (h_S, c_S) = LSTM_enc(E_s x_1 .. x_S);  (h_t, c_t) = LSTM_dec(E_t y_{t-1}, (h_{t-1}, c_{t-1}))
          from (h_0, c_0) = (h_S, c_S);  p(y_t | y_<t, x) = softmax(W h_t + b)
    Reference: Sutskever, Vinyals & Le 2014, "Sequence to Sequence Learning with Neural Networks",
        arXiv:1409.3215, Sec. 2 and 3.3 (reversed source).
    Shapes: src (B, S), tgt_in (B, T) -> logits (B, T, V); memory = state = (h, c) each (B, L, H).
    Differs from paper: 2 layers of 512 with dropout (bentrevett/pytorch-seq2seq, 1), not 4 of 1000
        without; each source's valid tokens (EOS included) are reversed when ``reverse_source``.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int, hidden_size: int,
                 num_layers: int, dropout: float, reverse_source: bool, pad_id: int, bos_id: int, eos_id: int):
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        self.reverse_source = reverse_source
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=pad_id)
        inner = dropout if num_layers > 1 else 0.0
        self.encoder = LSTM(embedding_dim, hidden_size, num_layers, dropout=inner)
        self.decoder = LSTM(embedding_dim, hidden_size, num_layers, dropout=inner)
        self.dropout = Dropout(dropout)
        self.out = Linear(hidden_size, tgt_vocab_size)

    def encode(self, src: Tensor) -> Tensors:
        lengths = source_lengths(self.check_ids(src, self.src_vocab_size, "source"))
        if self.reverse_source:  # position i of row b reads token lengths[b] - 1 - i (padding stays put)
            index = lengths[:, None] - 1 - torch.arange(src.shape[1], device=src.device)[None]
            src = torch.where(index >= 0, src.gather(1, index.clamp(min=0)), self.pad_id)
        _, (h, c) = self.encoder(self.dropout(self.src_embedding(src)), lengths=lengths)
        return h.transpose(0, 1), c.transpose(0, 1)

    def start(self, memory: Tensors) -> Tensors:
        return memory

    def _decode(self, state: Tensors, tokens: Tensor) -> tuple[Tensor, Tensors]:
        h, c = (s.transpose(0, 1).contiguous() for s in state)
        out, (h, c) = self.decoder(self.dropout(self.tgt_embedding(tokens)), (h, c))
        return self.out(self.dropout(out)), (h.transpose(0, 1), c.transpose(0, 1))

    def step(self, memory: Tensors, state: Tensors, tokens: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensors, Tensor | None]:
        logits, state = self._decode(state, tokens[:, None])
        return logits[:, 0], state, None

    def teacher_forced(self, memory: Tensors, tgt_in: Tensor) -> Tensor:
        return self._decode(self.start(memory), tgt_in)[0]


class GRUContextSeq2Seq(EncoderDecoder):
    """RNN encoder-decoder whose fixed context vector feeds every decoder step and the output layer.

    Math: c = h_S of GRU_enc(E_s x);  s_0 = tanh(W_0 c);  s_t = GRU_dec([E_t y_{t-1}; c], s_{t-1});
          p(y_t | y_<t, x) = softmax(DeepOutput([E_t y_{t-1}; s_t; c]))
    Reference: Cho, van Merriënboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio 2014, "Learning
        Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
        arXiv:1406.1078, Sec. 2.2 and Appendix A.1.
    Shapes: src (B, S), tgt_in (B, T) -> logits (B, T, V); memory = (c (B, H),); state = (s (B, H),).
    Differs from paper: GRU and embedding sizes from bentrevett/pytorch-seq2seq (2), not 1000 / 100;
        the maxout output layer (``DeepOutput``) can be replaced by a linear one (``maxout_size`` 0, as
        bentrevett's).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int, hidden_size: int, dropout: float,
                 maxout_size: int, pad_id: int, bos_id: int, eos_id: int):
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=pad_id)
        self.encoder = GRU(embedding_dim, hidden_size)
        self.init_state = Linear(hidden_size, hidden_size)
        self.decoder = GRU(embedding_dim + hidden_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.out = DeepOutput(embedding_dim + 2 * hidden_size, maxout_size, tgt_vocab_size)

    def encode(self, src: Tensor) -> Tensors:
        lengths = source_lengths(self.check_ids(src, self.src_vocab_size, "source"))
        _, h = self.encoder(self.dropout(self.src_embedding(src)), lengths=lengths)
        return (h[-1],)

    def start(self, memory: Tensors) -> Tensors:
        return (torch.tanh(self.init_state(memory[0])),)

    def _decode(self, memory: Tensors, state: Tensors, tokens: Tensor) -> tuple[Tensor, Tensors]:
        c = memory[0][:, None].expand(-1, tokens.shape[1], -1)  # (B, T, H)
        embedded = self.dropout(self.tgt_embedding(tokens))
        s, h = self.decoder(torch.cat([embedded, c.to(embedded.dtype)], dim=-1), state[0][None].contiguous())
        return self.out(self.dropout(torch.cat([embedded, s, c.to(s.dtype)], dim=-1))), (h[0],)

    def step(self, memory: Tensors, state: Tensors, tokens: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensors, Tensor | None]:
        logits, state = self._decode(memory, state, tokens[:, None])
        return logits[:, 0], state, None

    def teacher_forced(self, memory: Tensors, tgt_in: Tensor) -> Tensor:
        return self._decode(memory, self.start(memory), tgt_in)[0]


class AttentionSeq2Seq(EncoderDecoder):
    """Bidirectional GRU encoder and a GRU decoder that attends over the annotations at every step.

    Math: h_j = [h→_j; h←_j] (bidirectional GRU);  s_0 = tanh(W_s h←_1);
          α_tj = softmax_j(vᵀ tanh(W_a s_{t-1} + U_a h_j));  c_t = Σ_j α_tj h_j;
          s_t = GRU([E_t y_{t-1}; c_t], s_{t-1});  p(y_t | y_<t, x) = softmax(DeepOutput([s_t; c_t; E_t y_{t-1}]))
    Reference: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align
        and Translate", arXiv:1409.0473, Sec. 3 and Appendix A.1 (eqs. for s_0, e_ij, c_i).
    Shapes: src (B, S), tgt_in (B, T) -> logits (B, T, V); memory = (annotations (B, S, 2H_e),
        projected keys U_a h_j (B, S, A), mask (B, S), h←_1 (B, H_e)); state = (s (B, H_d),); weights (B, S).
    Differs from paper: sizes from bentrevett/pytorch-seq2seq (3) (GRUs 512, embeddings 256, not 1000 /
        620); padding positions get no attention; ``maxout_size`` 0 replaces the maxout output layer by
        a linear one (as bentrevett's).
    """

    attention_kind = "additive"

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int, encoder_hidden_size: int,
                 decoder_hidden_size: int, attention_size: int, dropout: float, maxout_size: int, pad_id: int,
                 bos_id: int, eos_id: int):
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        annotation = 2 * encoder_hidden_size
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=pad_id)
        self.encoder = GRU(embedding_dim, encoder_hidden_size, bidirectional=True)
        self.init_state = Linear(encoder_hidden_size, decoder_hidden_size)
        self.attention = AdditiveAttention(decoder_hidden_size, annotation, attention_size)
        self.decoder = GRU(embedding_dim + annotation, decoder_hidden_size)
        self.dropout = Dropout(dropout)
        self.out = DeepOutput(decoder_hidden_size + annotation + embedding_dim, maxout_size, tgt_vocab_size)

    def encode(self, src: Tensor) -> Tensors:
        mask = self.check_ids(src, self.src_vocab_size, "source")
        annotations, h = self.encoder(self.dropout(self.src_embedding(src)), lengths=source_lengths(mask))
        return annotations, self.attention.project_keys(annotations), mask, h[1]  # h[1] = h←_1, for s_0

    def start(self, memory: Tensors) -> Tensors:
        return (torch.tanh(self.init_state(memory[3])),)

    def _attend_and_update(self, memory: Tensors, s: Tensor, embedded: Tensor
                           ) -> tuple[Tensor, Tensor, Tensor]:
        """One decoder step from s_{t-1} (B, H_d) and E y_{t-1} (B, E): (s_t, c_t, α_t)."""
        annotations, projected, mask = memory[:3]
        context, weights = self.attention(s[:, None], annotations, mask=mask, projected_keys=projected)
        context = context[:, 0].to(embedded.dtype)
        _, h = self.decoder(torch.cat([embedded, context], dim=-1)[:, None], s[None].contiguous())
        return h[0], context, weights[:, 0]

    def step(self, memory: Tensors, state: Tensors, tokens: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensors, Tensor | None]:
        embedded = self.dropout(self.tgt_embedding(tokens))
        s, context, weights = self._attend_and_update(memory, state[0], embedded)
        logits = self.out(self.dropout(torch.cat([s, context.to(s.dtype), embedded.to(s.dtype)], dim=-1)))
        return logits, (s,), weights if need_weights else None

    def teacher_forced(self, memory: Tensors, tgt_in: Tensor) -> Tensor:
        """The recurrence runs step by step (c_t needs s_{t-1}); the output layer then runs once over
        all T steps."""
        embedded = self.dropout(self.tgt_embedding(tgt_in))  # (B, T, E)
        (s,) = self.start(memory)
        states, contexts = [], []
        for t in range(tgt_in.shape[1]):
            s, context, _ = self._attend_and_update(memory, s, embedded[:, t])
            states.append(s)
            contexts.append(context)
        s_all, c_all = torch.stack(states, dim=1), torch.stack(contexts, dim=1)
        return self.out(self.dropout(torch.cat([s_all, c_all.to(s_all.dtype), embedded.to(s_all.dtype)], dim=-1)))


class TransformerSeq2Seq(EncoderDecoder):
    """The Transformer encoder-decoder: self-attention encoder, masked self-attention plus
    cross-attention decoder, sinusoidal positions, shared target embedding and output weights.

    Math: X_0 = √D E_s[x] + PE;  X_l = EncoderLayer(X_l-1);  Y_0 = √D E_t[y] + PE;
          Y_l = DecoderLayer(Y_l-1, X_L) (causal self-attention, then attention over X_L);
          p(y_t | y_<t, x) = softmax(Y_L,t E_tᵀ)   (tied output layer)
    Reference: Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Sec. 3 (3.4:
        embeddings scaled by √D and shared with the pre-softmax linear layer).
    Shapes: src (B, S), tgt_in (B, T) -> logits (B, T, V); memory = (source mask (B, S), then per
        layer the cross-attention keys and values (B, H, S, d_k)); state = per layer the
        self-attention keys and values of the tokens so far; weights (B, L, H, S).
    Differs from paper: small (3 + 3 layers of width 256, as the ANCHORS recipe); optional pre-LN
        (``norm_first``, with final LayerNorms); source and target vocabularies are separate, so only
        the target embedding is tied to the output layer.
    """

    attention_kind = "multihead"

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int, num_encoder_layers: int,
                 num_decoder_layers: int, num_heads: int, dim_feedforward: int, dropout: float, norm_first: bool,
                 tie_embeddings: bool, pad_id: int, bos_id: int, eos_id: int):
        super().__init__(src_vocab_size, tgt_vocab_size, pad_id, bos_id, eos_id)
        if num_encoder_layers < 1 or num_decoder_layers < 1:
            raise UserError("transformer_seq2seq needs num_encoder_layers and num_decoder_layers >= 1")
        self.d_model, self.scale = d_model, math.sqrt(d_model)
        self.src_embedding = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.position = SinusoidalPositionalEncoding(d_model)
        self.dropout = Dropout(dropout)
        self.encoder_layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first=norm_first)
            for _ in range(num_encoder_layers))
        self.decoder_layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first=norm_first)
            for _ in range(num_decoder_layers))
        self.encoder_norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.out = Linear(d_model, tgt_vocab_size, bias=False)
        for name, p in self.named_parameters():  # Xavier for matrices (as torch.nn.Transformer)
            if p.dim() >= 2 and "embedding" not in name:
                nn.init.xavier_uniform_(p)
        for embedding in (self.src_embedding, self.tgt_embedding):  # N(0, D^-1/2): unit scale after √D
            nn.init.normal_(embedding.weight, std=d_model ** -0.5)
            nn.init.zeros_(embedding.weight[pad_id])
        if tie_embeddings:
            self.out.weight = self.tgt_embedding.weight

    def _embed(self, embedding: nn.Embedding, ids: Tensor, offset: int = 0) -> Tensor:
        return self.dropout(self.position(embedding(ids) * self.scale, offset=offset))

    def encode(self, src: Tensor) -> Tensors:
        mask = self.check_ids(src, self.src_vocab_size, "source")
        x = self._embed(self.src_embedding, src)
        for layer in self.encoder_layers:
            x = layer(x, key_mask=mask)
        x = self.encoder_norm(x)
        return (mask, *(t for layer in self.decoder_layers for t in layer.project_memory(x)))

    def start(self, memory: Tensors) -> Tensors:
        k = memory[1]
        empty = k.new_zeros(k.shape[0], k.shape[1], 0, k.shape[3])
        return (empty,) * (2 * len(self.decoder_layers))

    def _decode(self, memory: Tensors, state: Tensors | None, tokens: Tensor, need_weights: bool
                ) -> tuple[Tensor, Tensors, Tensor | None]:
        offset = 0 if state is None else state[0].shape[2]
        y = self._embed(self.tgt_embedding, tokens, offset)
        mask, new_state, weights = memory[0], [], []
        for i, layer in enumerate(self.decoder_layers):
            past = None if state is None else (state[2 * i], state[2 * i + 1])
            y, kv, w = layer.forward_with_state(y, (memory[1 + 2 * i], memory[2 + 2 * i]), memory_key_mask=mask,
                                                tgt_is_causal=True, past=past, need_weights=need_weights)
            new_state += list(kv)
            weights.append(w)
        attention = torch.stack(weights, dim=1)[:, :, :, -1] if need_weights else None  # (B, L, H, S), last query
        return self.out(self.decoder_norm(y)), tuple(new_state), attention

    def step(self, memory: Tensors, state: Tensors, tokens: Tensor, need_weights: bool = False
             ) -> tuple[Tensor, Tensors, Tensor | None]:
        logits, state, weights = self._decode(memory, state, tokens[:, None], need_weights)
        return logits[:, 0], state, weights

    def teacher_forced(self, memory: Tensors, tgt_in: Tensor) -> Tensor:
        return self._decode(memory, None, tgt_in, False)[0]

    def export_graphs(self) -> list[ExportGraph]:
        """Two graphs, so greedy or beam search runs outside torch: the encoder, src (B, S) -> the padding
        mask (B, S) and each decoder layer's projected memory keys and values (B, H, S, d_k); and one
        decoder step, tokens (B,), that memory and the past keys and values (B, H, P, d_k) of every
        decoder layer (P = 0 at the first step) -> logits (B, V) and the keys and values with P + 1."""
        batch, source, past = BATCH, ("source", 1, 1 << 16), ("past", 0, 1 << 16)
        src = self.example_inputs(2)[0]
        with torch.no_grad():
            memory = self.encode(src)
            state = self.start(memory)
            for _ in range(2):  # past length 2: an example of size 0 or 1 would fix that dimension in the graph
                state = self.step(memory, state, torch.full((2,), self.bos_id))[1]
        layers = range(len(self.decoder_layers))
        memory_names = ["mask", *(f"memory_{kv}{i}" for i in layers for kv in "kv")]
        state_names = [f"past_{kv}{i}" for i in layers for kv in "kv"]
        encoder = ExportGraph(EncoderGraph(self), (src,), ["src"], memory_names, {"src": {0: batch, 1: source}},
                              name="encoder")
        dynamic = {"tokens": {0: batch}, "mask": {0: batch, 1: source},
                   **{n: {0: batch, 2: source} for n in memory_names[1:]}, **{n: {0: batch, 2: past} for n in state_names}}
        decoder = ExportGraph(DecoderStepGraph(self, len(memory_names)), (src[:, 0], *memory, *state),
                              ["tokens", *memory_names, *state_names], ["logits", *(n + "_out" for n in state_names)],
                              dynamic, name="decoder_step")
        return [encoder, decoder]


class EncoderGraph(nn.Module):
    """``model.encode`` as a module (for export)."""

    def __init__(self, model: EncoderDecoder):
        super().__init__()
        self.model = model

    def forward(self, src: Tensor) -> Tensors:
        return self.model.encode(src)


class DecoderStepGraph(nn.Module):
    """``model.step`` with memory and state spelled out as tensors, in and out (for export)."""

    def __init__(self, model: EncoderDecoder, memory_tensors: int):
        super().__init__()
        self.model, self.memory_tensors = model, memory_tensors

    def forward(self, tokens: Tensor, *tensors: Tensor) -> Tensors:
        memory, state = tensors[:self.memory_tensors], tensors[self.memory_tensors:]
        logits, new_state, _ = self.model.step(memory, state, tokens)
        return (logits, *new_state)


def check_sizes(name: str, embedding_or_width: int, hidden: tuple[int, ...], dropout: float) -> None:
    check_widths(name, "sizes", (embedding_or_width, *hidden))
    check_dropout(name, dropout)


def check_maxout(name: str, maxout_size: int) -> None:
    if maxout_size < 0:
        raise UserError(f"{name}: maxout_size must be >= 1, or 0 for a linear output layer, got {maxout_size}")


@register_model("seq2seq_lstm")
def seq2seq_lstm(src_vocab_size: int = 8000, tgt_vocab_size: int = 8000, embedding_dim: int = 256,
                 hidden_size: int = 512, num_layers: int = 2, dropout: float = 0.5, reverse_source: bool = True,
                 pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> LSTMSeq2Seq:
    """Sutskever et al. 2014 at bentrevett/pytorch-seq2seq's size (2 x 512 LSTMs, embeddings 256)."""
    check_sizes("seq2seq_lstm", embedding_dim, (hidden_size, num_layers), dropout)
    return LSTMSeq2Seq(src_vocab_size, tgt_vocab_size, embedding_dim, hidden_size, num_layers, dropout, reverse_source,
                       pad_id, bos_id, eos_id)


@register_model("seq2seq_gru_context")
def seq2seq_gru_context(src_vocab_size: int = 8000, tgt_vocab_size: int = 8000, embedding_dim: int = 256,
                        hidden_size: int = 512, dropout: float = 0.5, maxout_size: int = 500, pad_id: int = PAD_ID,
                        bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> GRUContextSeq2Seq:
    """Cho et al. 2014's encoder-decoder with the context fed to every decoder step and the output."""
    check_sizes("seq2seq_gru_context", embedding_dim, (hidden_size,), dropout)
    check_maxout("seq2seq_gru_context", maxout_size)
    return GRUContextSeq2Seq(src_vocab_size, tgt_vocab_size, embedding_dim, hidden_size, dropout, maxout_size, pad_id,
                             bos_id, eos_id)


@register_model("seq2seq_attention")
def seq2seq_attention(src_vocab_size: int = 8000, tgt_vocab_size: int = 8000, embedding_dim: int = 256,
                      encoder_hidden_size: int = 512, decoder_hidden_size: int = 512, attention_size: int = 512,
                      dropout: float = 0.5, maxout_size: int = 500, pad_id: int = PAD_ID, bos_id: int = BOS_ID,
                      eos_id: int = EOS_ID) -> AttentionSeq2Seq:
    """Bahdanau et al. 2015: bidirectional GRU encoder, additive attention, GRU decoder, maxout output."""
    check_sizes("seq2seq_attention", embedding_dim, (encoder_hidden_size, decoder_hidden_size, attention_size), dropout)
    check_maxout("seq2seq_attention", maxout_size)
    return AttentionSeq2Seq(src_vocab_size, tgt_vocab_size, embedding_dim, encoder_hidden_size, decoder_hidden_size,
                            attention_size, dropout, maxout_size, pad_id, bos_id, eos_id)


@register_model("transformer_seq2seq")
def transformer_seq2seq(src_vocab_size: int = 8000, tgt_vocab_size: int = 8000, d_model: int = 256,
                        num_encoder_layers: int = 3, num_decoder_layers: int = 3, num_heads: int = 8,
                        dim_feedforward: int = 512, dropout: float = 0.1, norm_first: bool = False,
                        tie_embeddings: bool = True, pad_id: int = PAD_ID, bos_id: int = BOS_ID,
                        eos_id: int = EOS_ID) -> TransformerSeq2Seq:
    """Vaswani et al. 2017 at the ANCHORS size: 3 + 3 layers, width 256, 8 heads, feed-forward 512."""
    check_sizes("transformer_seq2seq", d_model, (num_heads, dim_feedforward), dropout)
    return TransformerSeq2Seq(src_vocab_size, tgt_vocab_size, d_model, num_encoder_layers, num_decoder_layers,
                              num_heads, dim_feedforward, dropout, norm_first, tie_embeddings, pad_id, bos_id, eos_id)
