"""Sentence classifiers over padded word ids: Kim's CNN, bidirectional LSTM / GRU, and NBSVM.

Every model takes ids (B, T), right-padded with its ``pad_id`` (0), derives its padding mask from them and
returns logits (B, num_classes); padding never changes a sentence's logits (tested). ``bert_classifier``
(models/bert.py) follows the same contract.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM, Conv2d, Dropout, Linear
from archzoo.models.base import BATCH, ExportGraph, check_dropout, check_widths, ids_to_logits_graphs
from archzoo.models.registry import register_model
from archzoo.vocab import PAD_ID

POOLING = ("max", "last")
EXPORT_LENGTH = 128  # the positions of an exported recurrent classifier (tasks/sentence_classification.py max_tokens)


def check_ids(name: str, ids: Tensor, pad_id: int) -> Tensor:
    """The padding mask (B, T) of a batch of ids; malformed batches raise one line."""
    if ids.dim() != 2 or ids.dtype != torch.long:
        raise UserError(f"{name} takes word ids of shape (B, T) (int64), got {tuple(ids.shape)} {ids.dtype}")
    mask = ids != pad_id
    if not torch.compiler.is_exporting() and not mask[:, 0].all():  # an exported graph has no data-dependent checks
        raise UserError(f"{name}: every sentence needs at least one word, padded on the right")
    return mask


def example_ids(vocab_size: int, batch_size: int, pad_id: int, length: int = 9) -> Tensor:
    """A random padded batch: row 0 is full, the others end early (lengths cycle through 1..length)."""
    ids = torch.randint(0, vocab_size - 1, (batch_size, length))
    ids = ids + (ids >= pad_id).long()  # every id but pad_id is a word
    lengths = torch.tensor([length] + [1 + (b * 3) % length for b in range(1, batch_size)])[:batch_size]
    return ids.masked_fill(torch.arange(length)[None] >= lengths[:, None], pad_id)


class TextCNN(nn.Module):
    """Kim's CNN: word embeddings, convolutions of several widths, max-over-time pooling, dropout, linear.

    Math: x_{1:n} word vectors (k-dim); for a filter of width h, c_i = ReLU(w . x_{i:i+h-1} + b) over
        every window touching the sentence (wide convolution: h - 1 zero vectors on each side, as Kim's
        code pads); ĉ = max_i c_i; z = [ĉ_1 .. ĉ_m]; y = W Dropout(z) + b with ||W_c||_2 <= s per class.
    Reference: Kim 2014, "Convolutional Neural Networks for Sentence Classification", arXiv:1408.5882,
        Sec. 2 (eqs. 1-4) and 2.1 (dropout p = 0.5, max-norm s = 3); CNN-rand: embeddings random, trained.
    Shapes: ids (B, T) -> embeddings as an image (B, k, T + 2(h_max - 1), 1) -> per width (B, maps, T')
        -> z (B, maps * widths) -> logits (B, num_classes).
    Differs from paper: the max-norm constraint projects W onto the ball before each training forward
        (equal to Kim's projection after each update); windows lying wholly in padding are left out of
        the max, so the batch's padding never changes a sentence's logits.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int, widths: tuple[int, ...],
                 num_maps: int, dropout: float, max_norm: float, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        if vocab_size < 3 or num_classes < 2 or embedding_dim < 1 or not widths:
            raise UserError("textcnn needs vocab_size >= 3, num_classes >= 2, embedding_dim >= 1 and some widths")
        check_widths("textcnn", "widths and num_maps", (*widths, num_maps))
        check_dropout("textcnn", dropout)
        if max_norm < 0:
            raise UserError(f"textcnn: max_norm must be >= 0 (0: off), got {max_norm}")
        self.vocab_size, self.widths, self.max_norm = vocab_size, tuple(widths), max_norm
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)  # Kim's CNN-rand initialisation
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        # a width-h filter spans h words and the whole embedding: the k embedding components are the
        # channels of a (T, 1) "image". (Kim's code convolves a one-channel (T, k) image with (h, k)
        # filters, the same function; PyTorch's CPU kernel for that layout returned NaN weight gradients
        # from finite inputs here, torch 2.13.)
        self.convs = nn.ModuleList(Conv2d(embedding_dim, num_maps, (h, 1)) for h in widths)
        self.dropout = Dropout(dropout)
        self.output = Linear(num_maps * len(widths), num_classes)

    def forward(self, ids: Tensor) -> Tensor:
        mask = check_ids("textcnn", ids, self.pad_id)
        lengths = mask.sum(1)
        pad = max(self.widths) - 1
        x = self.embedding(F.pad(ids, (pad, pad), value=self.pad_id)).transpose(1, 2).unsqueeze(3)  # (B, k, T + 2 pad, 1)
        pooled = []
        for h, conv in zip(self.widths, self.convs, strict=True):
            c = conv(x).squeeze(3)  # (B, maps, T + 2 pad - h + 1)
            start = torch.arange(c.shape[2], device=ids.device)
            # windows [s, s + h) that touch the sentence's tokens [pad, pad + length)
            touches = (start[None] > pad - h) & (start[None] < pad + lengths[:, None])
            # ReLU and max commute: max_i ReLU(c_i) = ReLU(max_i c_i)
            pooled.append(torch.relu(c.masked_fill(~touches[:, None], float("-inf")).amax(2)))
        if self.training and self.max_norm:
            with torch.no_grad():
                self.output.weight.copy_(torch.renorm(self.output.weight, 2, 0, self.max_norm))
        return self.output(self.dropout(torch.cat(pooled, 1)))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (example_ids(self.vocab_size, batch_size, self.pad_id),)

    def export_graphs(self) -> list[ExportGraph]:
        return ids_to_logits_graphs(self)


class RecurrentClassifier(nn.Module):
    """A bidirectional LSTM or GRU over the words, pooled over time, then dropout and a linear layer.

    Math: e_t = E[x_t]; h_t = [→h_t ; ←h_t] from archzoo's bidirectional recurrent layer run with the
        sentence lengths (the backward direction starts at each sentence's last word); pooled = max_t h_t
        over real words ("max") or [→h_n ; ←h_1] ("last"); logits = W Dropout(pooled) + b.
    Reference: Graves & Schmidhuber 2005 (bidirectional LSTM); Conneau et al. 2017, "Supervised Learning
        of Universal Sentence Representations", arXiv:1705.02364, Sec. 3.2.1 (BiLSTM with max pooling).
    Shapes: ids (B, T) -> (B, T, 2H) -> pooled (B, 2H) -> logits (B, num_classes).
    """

    def __init__(self, cell: str, vocab_size: int, num_classes: int, embedding_dim: int, hidden_size: int,
                 num_layers: int, dropout: float, pooling: str, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        name = f"bi{cell}_classifier"
        if vocab_size < 3 or num_classes < 2:
            raise UserError(f"{name} needs vocab_size >= 3 and num_classes >= 2")
        check_widths(name, "embedding_dim, hidden_size and num_layers", (embedding_dim, hidden_size, num_layers))
        check_dropout(name, dropout)
        if pooling not in POOLING:
            raise UserError(f"{name}: pooling must be one of {', '.join(POOLING)}, got {pooling!r}")
        self.name, self.vocab_size, self.pooling = name, vocab_size, pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.rnn = {"lstm": LSTM, "gru": GRU}[cell](embedding_dim, hidden_size, num_layers, batch_first=True,
                                                    dropout=dropout if num_layers > 1 else 0.0, bidirectional=True)
        self.dropout = Dropout(dropout)
        self.output = Linear(2 * hidden_size, num_classes)

    def forward(self, ids: Tensor) -> Tensor:
        mask = check_ids(self.name, ids, self.pad_id)
        x, lengths = self.dropout(self.embedding(ids)), mask.sum(1)
        if torch.compiler.is_exporting():  # packing by length cannot be traced; the same function without it
            out, h_n = self.rnn.forward_unpacked(x, lengths)
        else:
            out, state = self.rnn(x, lengths=lengths)
            h_n = state[0] if isinstance(state, tuple) else state  # (L*2, B, H)
        if self.pooling == "max":
            pooled = out.masked_fill(~mask[..., None], float("-inf")).amax(1)
        else:  # the last layer's two directions
            pooled = torch.cat([h_n[-2], h_n[-1]], 1)
        return self.output(self.dropout(pooled))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (example_ids(self.vocab_size, batch_size, self.pad_id),)

    def export_graphs(self) -> list[ExportGraph]:
        """ids (B, EXPORT_LENGTH) -> logits: the recurrence unrolls over time when traced, so the length is
        fixed at the sentence task's default ``max_tokens``; pad (or truncate) every sentence to it."""
        ids = example_ids(self.vocab_size, 2, self.pad_id, EXPORT_LENGTH)
        return [ExportGraph(self, (ids,), ["ids"], ["logits"], {"ids": {0: BATCH}})]


class NBSVM(nn.Module):
    """NBSVM (logistic-regression form): a linear model on binarised uni+bigram features scaled by the
    naive-Bayes log-count ratio.

    Math: f̂ ∈ {0,1}^G marks the n-grams present; for class c, p_c = α + Σ_{i: y_i = c} f̂_i and
        q_c = α + Σ_{i: y_i ≠ c} f̂_i give r_c = log(p_c / ||p_c||_1) - log(q_c / ||q_c||_1);
        logits_c = Σ_g f̂_g r_{g,c} w_{g,c} + b_c, with w, b trained by cross-entropy (L2 via weight
        decay). The ratios r are a buffer filled from the training split by ``fit_counts`` (the task's
        ``init_model``); before that r = 1 and the model is plain bag-of-n-grams logistic regression.
    Reference: Wang & Manning 2012, "Baselines and Bigrams: Simple, Good Sentiment and Topic
        Classification", ACL, Sec. 2.3 (NBSVM-bi: 79.4% on MR); the logistic-regression form as in
        Mesnil, Mikolov, Ranzato & Bengio 2014, arXiv:1412.5335.
    Shapes: ids (B, T) -> n-gram ids (B, 2T - 1) -> logits (B, num_classes). Unigram ids are the word ids;
        a bigram (a, b) hashes to vocab_size + (a * 1,000,003 + b) mod bigram_buckets.
    Differs from paper: logistic loss trained by the trainer's optimizer instead of an L2-SVM with the
        interpolation w' = (1 - β) w̄ + β w; per-class ratios (one-vs-rest) so it handles any number of
        classes; bigrams hashed (collisions possible) because the model sees word ids, not bigram ids.
    """

    def __init__(self, vocab_size: int, num_classes: int, bigram_buckets: int, alpha: float, dropout: float,
                 pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        if vocab_size < 3 or num_classes < 2 or bigram_buckets < 1 or alpha <= 0:
            raise UserError("nbsvm needs vocab_size >= 3, num_classes >= 2, bigram_buckets >= 1 and alpha > 0")
        check_dropout("nbsvm", dropout)
        self.vocab_size, self.bigram_buckets, self.alpha = vocab_size, bigram_buckets, alpha
        features = vocab_size + bigram_buckets
        self.weight = nn.Parameter(torch.zeros(features, num_classes))  # rank 2, so weight decay applies
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer("ratio", torch.ones(features, num_classes))
        self.dropout = dropout

    def ngrams(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Distinct n-gram ids (B, F) and their mask (B, F): binarised features."""
        if torch.compiler.is_exporting():  # two more padding positions (no n-grams) keep T free: a traced
            ids = F.pad(ids, (0, 2), value=self.pad_id)  # graph otherwise specialises on T - 1 == 1
        mask = check_ids("nbsvm", ids, self.pad_id)
        bigrams = self.vocab_size + (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % self.bigram_buckets
        grams = torch.cat([ids, bigrams], 1).masked_fill(~torch.cat([mask, mask[:, 1:]], 1), -1)
        grams = grams.sort(1).values
        first = torch.ones_like(grams, dtype=torch.bool)
        first[:, 1:] = grams[:, 1:] != grams[:, :-1]
        return grams.clamp(min=0), first & (grams >= 0)

    @torch.no_grad()
    def fit_counts(self, ids: Tensor, labels: Tensor, batch_size: int = 1024) -> None:
        """Set the log-count ratios r from training sentences (ids (N, T), labels (N,))."""
        counts = torch.zeros_like(self.ratio, dtype=torch.float64)  # (G, C): sentences of class c holding g
        for i in range(0, len(ids), batch_size):
            grams, present = self.ngrams(ids[i:i + batch_size])
            onehot = F.one_hot(labels[i:i + batch_size], counts.shape[1]).double()  # (b, C)
            rows = torch.arange(len(grams), device=grams.device)[:, None].expand_as(grams)[present]
            counts.index_add_(0, grams[present], onehot[rows])
        p = self.alpha + counts
        q = self.alpha + counts.sum(1, keepdim=True) - counts
        ratio = (p / p.sum(0)).log() - (q / q.sum(0)).log()
        self.ratio.copy_(ratio.to(self.ratio.dtype))

    def forward(self, ids: Tensor) -> Tensor:
        grams, present = self.ngrams(ids)
        if self.training and self.dropout:  # feature dropout (Wang & Manning 2013's "fast dropout" in spirit)
            present = present & (torch.rand(present.shape, device=ids.device) >= self.dropout)
            scale = 1.0 / (1.0 - self.dropout)
        else:
            scale = 1.0
        contrib = (self.ratio[grams] * self.weight[grams]) * present[..., None]  # (B, F, C)
        return contrib.sum(1) * scale + self.bias

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (example_ids(self.vocab_size, batch_size, self.pad_id),)

    def export_graphs(self) -> list[ExportGraph]:
        return ids_to_logits_graphs(self)


@register_model("textcnn")
def textcnn(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 300,
            widths: tuple[int, ...] = (3, 4, 5), num_maps: int = 100, dropout: float = 0.5,
            max_norm: float = 3.0, pad_id: int = PAD_ID) -> TextCNN:
    """Kim 2014 CNN-rand: widths 3, 4, 5 x 100 maps, ReLU, max-over-time pooling, dropout 0.5, max-norm 3."""
    return TextCNN(vocab_size, num_classes, embedding_dim, widths, num_maps, dropout, max_norm, pad_id)


@register_model("bilstm_classifier")
def bilstm_classifier(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 300, hidden_size: int = 150,
                      num_layers: int = 1, dropout: float = 0.5, pooling: str = "max",
                      pad_id: int = PAD_ID) -> RecurrentClassifier:
    """Bidirectional LSTM with max pooling over time (Conneau et al. 2017's encoder, one layer)."""
    return RecurrentClassifier("lstm", vocab_size, num_classes, embedding_dim, hidden_size, num_layers, dropout,
                               pooling, pad_id)


@register_model("bigru_classifier")
def bigru_classifier(vocab_size: int = 1000, num_classes: int = 2, embedding_dim: int = 300, hidden_size: int = 150,
                     num_layers: int = 1, dropout: float = 0.5, pooling: str = "max",
                      pad_id: int = PAD_ID) -> RecurrentClassifier:
    """Bidirectional GRU with max pooling over time."""
    return RecurrentClassifier("gru", vocab_size, num_classes, embedding_dim, hidden_size, num_layers, dropout,
                               pooling, pad_id)


@register_model("nbsvm")
def nbsvm(vocab_size: int = 1000, num_classes: int = 2, bigram_buckets: int = 1 << 18, alpha: float = 1.0,
          dropout: float = 0.0, pad_id: int = PAD_ID) -> NBSVM:
    """Wang & Manning 2012 NBSVM-bi in logistic-regression form (uni+bigrams, NB log-count ratios)."""
    return NBSVM(vocab_size, num_classes, bigram_buckets, alpha, dropout, pad_id)
