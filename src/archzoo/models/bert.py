"""Encoder-only Transformer (BERT-style) backbone and a sequence-classification head on top of it.

The backbone reads a padded batch of token ids in both directions at once and returns one vector
per position; ``SequenceClassifier`` pools those (the first token, as BERT's [CLS], or the mean over
real tokens) into class logits. Sentence classification and masked-LM pretraining build on these.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.dropout import Dropout
from archzoo.layers.linear import Linear
from archzoo.layers.norm import LayerNorm
from archzoo.layers.positional import LearnedPositionalEmbedding
from archzoo.layers.transformer import TransformerEncoderLayer
from archzoo.models.base import ExportGraph, ids_to_logits_graphs
from archzoo.models.registry import register_model
from archzoo.vocab import PAD_ID

POOLING = ("cls", "mean")


class TransformerEncoder(nn.Module):
    """Token and learned position embeddings, LayerNorm and dropout, then a stack of encoder layers.

    Math: h_0 = Dropout(LN(E[x] + P));  h_l = EncoderLayer_l(h_{l-1}) with padding keys masked out
    Reference: Devlin, Chang, Lee & Toutanova 2019, "BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding", arXiv:1810.04805, Sec. 3 (post-LN layers, GELU);
        Vaswani et al. 2017, arXiv:1706.03762.
    Shapes: ids (B, T) with T <= max_len; key_mask (B, T), True = real token (default: ids != pad_id)
        -> (B, T, D). Outputs at padding positions are computed but attend to nothing real.
    Differs from paper: no segment embeddings (single sentences); pre-LN layers optional
        (``norm_first``), then a final LayerNorm closes the stack as in GPT-2.
    """

    def __init__(self, vocab_size: int, max_len: int = 128, d_model: int = 128, num_layers: int = 2,
                 num_heads: int = 4, dim_feedforward: int = 512, dropout: float = 0.1, norm_first: bool = False,
                 pad_id: int = PAD_ID):
        super().__init__()
        if vocab_size < 2 or max_len < 1 or num_layers < 1:
            raise UserError("the encoder needs vocab_size >= 2 and max_len, num_layers >= 1")
        if not 0 <= pad_id < vocab_size:
            raise UserError(f"pad_id={pad_id} is not a token id below vocab_size={vocab_size}")
        self.vocab_size, self.pad_id, self.d_model = vocab_size, pad_id, d_model
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.position = LearnedPositionalEmbedding(max_len, d_model)
        self.embedding_norm = LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, activation="gelu",
                                    norm_first=norm_first)
            for _ in range(num_layers))
        self.norm = LayerNorm(d_model) if norm_first else None

    def forward(self, ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        if ids.dim() != 2:
            raise UserError(f"the encoder takes token ids of shape (B, T), got {tuple(ids.shape)}")
        key_mask = ids != self.pad_id if key_mask is None else key_mask
        h = self.dropout(self.embedding_norm(self.position(self.token_embedding(ids))))
        for layer in self.layers:
            h = layer(h, key_mask=key_mask)
        return h if self.norm is None else self.norm(h)


class SequenceClassifier(nn.Module):
    """A classification head on the encoder: pool the positions, dropout, linear.

    Math: logits = W Dropout(pool(h)) + b, pool = h[:, 0] ("cls") or the mean of h over real tokens ("mean").
    Reference: Devlin et al. 2019, arXiv:1810.04805, Sec. 4.1 (fine-tuning on the [CLS] vector).
    Shapes: ids (B, T) -> logits (B, num_classes).
    """

    def __init__(self, encoder: TransformerEncoder, num_classes: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if num_classes < 2:
            raise UserError(f"a classifier needs num_classes >= 2, got {num_classes}")
        if pooling not in POOLING:
            raise UserError(f"pooling must be one of {', '.join(POOLING)}, got {pooling!r}")
        self.encoder, self.pooling = encoder, pooling
        self.dropout = Dropout(dropout)
        self.classifier = Linear(encoder.d_model, num_classes)

    def forward(self, ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        key_mask = ids != self.encoder.pad_id if key_mask is None else key_mask
        h = self.encoder(ids, key_mask)
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            weights = key_mask.to(h.dtype)[..., None]
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        ids = torch.randint(1, self.encoder.vocab_size, (batch_size, 8))
        ids[0, 5:] = self.encoder.pad_id  # a padded row
        return (ids,)

    def export_graphs(self) -> list[ExportGraph]:
        return ids_to_logits_graphs(self, max_len=self.encoder.position.num_embeddings)


MLM_HEADS = ("tied", "scaled")


class BertClassifier(SequenceClassifier):
    """``SequenceClassifier`` over word ids that can also read its encoder out as a masked LM.

    Math: masked_lm: logits_t = h_t E^T ("tied") or h_t E^T / sqrt(D) ("scaled") at the positions t that
        ``masked_lm`` (B, T) marks, the decoder tied to the token embedding E (no new parameters),
        so a masked-LM loss (task option ``data.mlm_weight``, or the ``masked_lm`` task's pre-training)
        trains the same weights the classifier uses.
    Reference: Devlin et al. 2019, arXiv:1810.04805, Sec. 3.1 (masked LM); Press & Wolf 2017,
        arXiv:1608.05859 (tied output embedding).
    Shapes: ids (B, T) -> logits (B, num_classes); with ``masked_lm`` (B, T) bool -> (N, V) for its N
        marked positions in row-major order (only those are read out: the V-wide matmul dominates).
    Differs from paper: BERT's MLM head adds a dense layer, GELU, LayerNorm and an output bias. Its
        embeddings start at std 0.02; here E starts at torch's std 1 and feeds a LayerNorm, so h_t E^T
        starts with logits of std about sqrt(D) (a masked-LM loss near 20 nats, twice a uniform guess
        over 18k words); "scaled" divides by sqrt(D) so they start near std 1.
    """

    def __init__(self, encoder: TransformerEncoder, num_classes: int, pooling: str = "mean", dropout: float = 0.1,
                 mlm_head: str = "tied"):
        super().__init__(encoder, num_classes, pooling, dropout)
        if mlm_head not in MLM_HEADS:
            raise UserError(f"mlm_head must be one of {', '.join(MLM_HEADS)}, got {mlm_head!r}")
        self.mlm_scale = 1.0 if mlm_head == "tied" else encoder.d_model ** -0.5

    def forward(self, ids: Tensor, key_mask: Tensor | None = None, masked_lm: Tensor | None = None) -> Tensor:
        if masked_lm is None:
            return super().forward(ids, key_mask)
        return self.encoder(ids, key_mask)[masked_lm] @ self.encoder.token_embedding.weight.T * self.mlm_scale


@register_model("bert_classifier")
def bert_classifier(vocab_size: int = 1000, num_classes: int = 2, max_len: int = 128, d_model: int = 128,
                    num_layers: int = 2, num_heads: int = 4, dim_feedforward: int = 512, dropout: float = 0.1,
                    norm_first: bool = False, pooling: str = "mean", pad_id: int = PAD_ID,
                    mlm_head: str = "tied") -> BertClassifier:
    """A small BERT-style encoder (2 layers, width 128) with a mean-pooled classification head."""
    encoder = TransformerEncoder(vocab_size, max_len, d_model, num_layers, num_heads, dim_feedforward, dropout,
                                 norm_first, pad_id)
    return BertClassifier(encoder, num_classes, pooling, dropout, mlm_head)
