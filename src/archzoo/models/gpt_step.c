/* One decode step of archzoo's GPT (models/gpt.py) for every layer at once, in C.

   At batch 1 a step is 4 matrix-vector products per layer plus a few small kernels; from Python each
   kernel is a call costing microseconds of dispatch, about 600 us of the 870 us a token took through
   numpy and torch calls. Here the whole step after the token embedding is one call: the same
   arithmetic as StaticCacheDecoder's numpy path (layer norm, x W + b with W stored (in, out), rotary
   rotation as a complex product of (even, odd) pairs, attention over the filled cache with the scale
   folded into the query columns, softmax, exact GELU or ReLU, residual additions, final norm, read-out),
   in float32 with float64 sums for the norms' statistics. Logits equal forward's to float32 rounding
   (summation order differs); tests/models/test_gpt_native.py checks them and the sampled tokens.

   Built by archzoo/native.py with the system's C compiler; without one the numpy path runs instead. */

#include <math.h>
#include <stddef.h>

typedef struct {
    const float *norm1_weight, *norm1_bias, *norm2_weight, *norm2_bias;
    float norm1_eps, norm2_eps;
    const float *qkv_weight, *qkv_bias;  /* (D, 3D), (3D) */
    const float *out_weight, *out_bias;  /* (D, D), (D) */
    const float *fc1_weight, *fc1_bias;  /* (D, F), (F) */
    const float *fc2_weight, *fc2_bias;  /* (F, D), (D) */
    float *cache;                        /* (2, B, H, context, d): keys then values */
} Layer;

typedef struct {
    int batch, dim, hidden, heads, head_dim, context, vocab, num_layers;
    int gelu;               /* 1: exact GELU, 0: ReLU */
    const float *rotations; /* (positions, d/2) complex64 as (cos, sin) pairs, or NULL without rotary */
    const float *norm_weight, *norm_bias;
    float norm_eps;
    const float *head;      /* (D, V) */
    float *h;               /* (B, D) residual stream: the embedded token on entry */
    float *x;               /* (B, D) the normalised input of a block's half */
    float *ffn;             /* (B, F) the feed-forward hidden layer */
    float *qkv;             /* (B, 3D) */
    float *attn;            /* (B, D) */
    float *scores;          /* (context) */
    const Layer *layers;
} Plan;

/* y = x W + b (accumulate = 0) or y += x W + b (accumulate = 1); W (n_in, n_out) row-major, b may be NULL.
   Four rows of W per pass over y: y stays in L1 and W streams once. */
static void affine(const float *restrict x, const float *restrict W, const float *restrict b,
                   float *restrict y, int n_in, int n_out, int accumulate) {
    for (int j = 0; j < n_out; j++) y[j] = (accumulate ? y[j] : 0.0f) + (b ? b[j] : 0.0f);
    int i = 0;
    for (; i + 4 <= n_in; i += 4) {
        const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
        const float *restrict w0 = W + (size_t)i * n_out, *restrict w1 = w0 + n_out;
        const float *restrict w2 = w1 + n_out, *restrict w3 = w2 + n_out;
        for (int j = 0; j < n_out; j++) y[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j];
    }
    for (; i < n_in; i++) {
        const float xi = x[i];
        const float *restrict w = W + (size_t)i * n_out;
        for (int j = 0; j < n_out; j++) y[j] += xi * w[j];
    }
}

/* y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance as torch.layer_norm; weight and bias may be NULL. */
static void layer_norm(const float *restrict x, const float *restrict weight, const float *restrict bias,
                       float eps, float *restrict y, int n) {
    double sum = 0.0, squares = 0.0;
    for (int i = 0; i < n; i++) sum += x[i];
    const float mean = (float)(sum / n);
    for (int i = 0; i < n; i++) {
        const double c = x[i] - mean;
        squares += c * c;
    }
    const float inv = (float)(1.0 / sqrt(squares / n + eps));
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * (weight ? weight[i] : 1.0f) + (bias ? bias[i] : 0.0f);
}

/* (a + ib)(c + is) on d/2 interleaved pairs. */
static void rotate(float *restrict v, const float *restrict rotation, int pairs) {
    for (int p = 0; p < pairs; p++) {
        const float a = v[2 * p], b = v[2 * p + 1], c = rotation[2 * p], s = rotation[2 * p + 1];
        v[2 * p] = a * c - b * s;
        v[2 * p + 1] = a * s + b * c;
    }
}

/* out = softmax(q K^T) V over the first `length` cached positions of one head. */
static void attend(const float *restrict q, const float *restrict keys, const float *restrict values,
                   float *restrict scores, float *restrict out, int length, int d) {
    float top = -INFINITY;
    for (int t = 0; t < length; t++) {
        const float *restrict k = keys + (size_t)t * d;
        float s = 0.0f;
        for (int i = 0; i < d; i++) s += q[i] * k[i];
        scores[t] = s;
        if (s > top) top = s;
    }
    float total = 0.0f;
    for (int t = 0; t < length; t++) {
        scores[t] = expf(scores[t] - top);
        total += scores[t];
    }
    for (int i = 0; i < d; i++) out[i] = 0.0f;
    for (int t = 0; t < length; t++) {
        const float p = scores[t] / total;
        const float *restrict v = values + (size_t)t * d;
        for (int i = 0; i < d; i++) out[i] += p * v[i];
    }
}

/* Every layer, the final norm and the read-out for the token at position `pos`; logits (B, V). */
void gpt_step(const Plan *plan, int pos, float *logits) {
    const int B = plan->batch, D = plan->dim, F = plan->hidden, H = plan->heads, d = plan->head_dim;
    const int C = plan->context, end = pos + 1;
    const float *rotation = plan->rotations ? plan->rotations + (size_t)pos * d : NULL;  /* d/2 (cos, sin) */
    for (int l = 0; l < plan->num_layers; l++) {
        const Layer *L = plan->layers + l;
        for (int b = 0; b < B; b++) {
            float *h = plan->h + (size_t)b * D, *x = plan->x + (size_t)b * D, *ffn = plan->ffn + (size_t)b * F;
            float *qkv = plan->qkv + (size_t)b * 3 * D, *attn = plan->attn + (size_t)b * D;
            layer_norm(h, L->norm1_weight, L->norm1_bias, L->norm1_eps, x, D);
            affine(x, L->qkv_weight, L->qkv_bias, qkv, D, 3 * D, 0);
            for (int head = 0; head < H; head++) {
                float *q = qkv + head * d, *k = qkv + D + head * d, *v = qkv + 2 * D + head * d;
                if (rotation) {
                    rotate(q, rotation, d / 2);
                    rotate(k, rotation, d / 2);
                }
                float *keys = L->cache + (((size_t)0 * B + b) * H + head) * C * d;
                float *values = L->cache + (((size_t)1 * B + b) * H + head) * C * d;
                for (int i = 0; i < d; i++) {
                    keys[(size_t)pos * d + i] = k[i];
                    values[(size_t)pos * d + i] = v[i];
                }
                attend(q, keys, values, plan->scores, attn + head * d, end, d);
            }
            affine(attn, L->out_weight, L->out_bias, h, D, D, 1);
            layer_norm(h, L->norm2_weight, L->norm2_bias, L->norm2_eps, x, D);
            affine(x, L->fc1_weight, L->fc1_bias, ffn, D, F, 0);
            if (plan->gelu) {
                for (int i = 0; i < F; i++) ffn[i] = 0.5f * ffn[i] * (1.0f + erff(ffn[i] * 0.70710678f));
            } else {
                for (int i = 0; i < F; i++) ffn[i] = ffn[i] > 0.0f ? ffn[i] : 0.0f;
            }
            affine(ffn, L->fc2_weight, L->fc2_bias, h, F, D, 1);
        }
    }
    for (int b = 0; b < B; b++) {
        float *x = plan->x + (size_t)b * D, *out = logits + (size_t)b * plan->vocab;
        layer_norm(plan->h + (size_t)b * D, plan->norm_weight, plan->norm_bias, plan->norm_eps, x, D);
        affine(x, plan->head, NULL, out, D, plan->vocab, 0);
    }
}
