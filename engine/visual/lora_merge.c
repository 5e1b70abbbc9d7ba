/* DAPE LoRA merge (MODEL-SPEC.md section 6.3): loralib MergedLinear(C, 3C, r, enable_lora =
 * [True, False, True]) with lora_alpha = 1, folded into the qkv weight once at load:
 *   W[0:C]   += B[0:C]  . A[0:r]  / r      (q)
 *   W[C:2C]     unchanged                   (k)
 *   W[2C:3C] += B[C:2C] . A[r:2r] / r      (v)
 * computed in f32 (each product accumulated in double, rounded to f32, divided by r, added to
 * the f32 weight), then rounded once to bf16 for compute, as the official loader does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"
#include "visual_impl.h"

static enum infvsr_status check_shape(const struct infvsr_tensor * t, const char * what, int64_t d0, int64_t d1,
                                      struct infvsr_err * err) {
    if (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1 && infvsr_dtype_is_float(t->dtype)) return INFVSR_OK;
    char got[96];
    return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s '%s': expected a float tensor of shape [%lld, %lld], got %s %s",
                          what, t->name, (long long)d0, (long long)d1, infvsr_dtype_name(t->dtype),
                          infvsr_shape_str(t->ndim, t->shape, got, sizeof got));
}

/* out[rows, C] += (b[rows, r] . a[r, C]) / r, a and b already widened to f32. */
static void add_low_rank(float * out, const float * b, const float * a, int64_t rows, int64_t c, int r) {
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < c; j++) {
            double acc = 0;
            for (int k = 0; k < r; k++) acc += (double)b[i * r + k] * (double)a[(int64_t)k * c + j];
            float delta = (float)acc / (float)r;
            out[i * c + j] = out[i * c + j] + delta;
        }
    }
}

enum infvsr_status infvsr_visual_lora_merge_f32(const struct infvsr_tensor * w_qkv,
                                                const struct infvsr_tensor * lora_a,
                                                const struct infvsr_tensor * lora_b, int rank,
                                                struct infvsr_tensor * out, struct infvsr_err * err) {
    if (!w_qkv || !lora_a || !lora_b || !out || rank <= 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "lora merge: NULL tensor or rank %d", rank);
    }
    if (w_qkv->ndim != 2 || w_qkv->shape[0] != 3 * w_qkv->shape[1]) {
        char got[96];
        return infvsr_err_set(err, INFVSR_ERR_MODEL, "qkv weight '%s': expected shape [3C, C], got %s", w_qkv->name,
                              infvsr_shape_str(w_qkv->ndim, w_qkv->shape, got, sizeof got));
    }
    const int64_t c = w_qkv->shape[1];
    enum infvsr_status st;
    if ((st = check_shape(lora_a, "lora_A", 2 * (int64_t)rank, c, err)) != INFVSR_OK) return st;
    if ((st = check_shape(lora_b, "lora_B", 2 * c, rank, err)) != INFVSR_OK) return st;
    if (out->dtype != INFVSR_TYPE_F32 || infvsr_tensor_numel(out) != 3 * c * c) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "lora merge: out must be F32 with %lld elements",
                              (long long)(3 * c * c));
    }
    float * a = malloc((size_t)(2 * rank * c) * sizeof *a);
    float * b = malloc((size_t)(2 * c * rank) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "lora merge: out of memory (C = %lld)", (long long)c);
    }
    float * w = out->data;
    infvsr_convert_to_f32(w, w_qkv->data, w_qkv->dtype, (size_t)(3 * c * c));
    infvsr_convert_to_f32(a, lora_a->data, lora_a->dtype, (size_t)(2 * rank * c));
    infvsr_convert_to_f32(b, lora_b->data, lora_b->dtype, (size_t)(2 * c * rank));
    add_low_rank(w, b, a, c, c, rank);                                      /* q rows */
    add_low_rank(w + 2 * c * c, b + c * rank, a + (int64_t)rank * c, c, c, rank); /* v rows */
    free(a);
    free(b);
    return INFVSR_OK;
}

/* Looks up one half of the pair; a missing half is reported together with its partner's state. */
static enum infvsr_status find_lora(const struct infvsr_weights * dape, const char * blk_prefix, const char * half,
                                    const char * other, const struct infvsr_tensor ** out, struct infvsr_err * err) {
    char key[INFVSR__SWIN_KEY_MAX + 32], other_key[INFVSR__SWIN_KEY_MAX + 32];
    snprintf(key, sizeof key, "%sattn.qkv.%s", blk_prefix, half);
    snprintf(other_key, sizeof other_key, "%sattn.qkv.%s", blk_prefix, other);
    *out = infvsr_weights_find(dape, key);
    if (*out) return INFVSR_OK;
    char hint[512];
    return infvsr_err_set(err, INFVSR_ERR_MODEL, "%s: DAPE LoRA tensor '%s' is missing (%s '%s' is %s; %s)",
                          infvsr_weights_path(dape), key, other, other_key,
                          infvsr_weights_find(dape, other_key) ? "present" : "missing too",
                          infvsr_weights_hint(dape, key, hint, sizeof hint));
}

enum infvsr_status infvsr__swin_block_merge_dape(const struct infvsr_weights * dape, int rank,
                                                 struct infvsr__swin_block * blk, struct infvsr_err * err) {
    const struct infvsr_tensor * a = NULL, * b = NULL;
    enum infvsr_status st = find_lora(dape, blk->prefix, "lora_A", "lora_B", &a, err);
    if (st == INFVSR_OK) st = find_lora(dape, blk->prefix, "lora_B", "lora_A", &b, err);
    if (st != INFVSR_OK) return st;

    const int64_t c = blk->qkv_w.shape[1];
    struct infvsr_tensor merged = { 0 };
    int64_t shape[2] = { 3 * c, c };
    if (infvsr_tensor_alloc(&merged, "qkv_merged_f32", INFVSR_TYPE_F32, 2, shape) != INFVSR_OK) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "DAPE merge of '%sattn.qkv': out of memory", blk->prefix);
    }
    st = infvsr_visual_lora_merge_f32(&blk->qkv_w, a, b, rank, &merged, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "%s (LoRA rank %d from the model config)", infvsr_weights_path(dape), rank);
        infvsr_tensor_release(&merged);
        return st;
    }
    struct infvsr_tensor w_bf16 = { 0 };
    if (infvsr_tensor_alloc(&w_bf16, blk->qkv_w.name, INFVSR_TYPE_BF16, 2, shape) != INFVSR_OK) {
        infvsr_tensor_release(&merged);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "DAPE merge of '%sattn.qkv': out of memory", blk->prefix);
    }
    infvsr_convert_from_f32(w_bf16.data, INFVSR_TYPE_BF16, merged.data, (size_t)(3 * c * c));
    infvsr_tensor_release(&merged);
    blk->qkv_w = w_bf16; /* owned from now on; the checkpoint view is dropped */
    return INFVSR_OK;
}
