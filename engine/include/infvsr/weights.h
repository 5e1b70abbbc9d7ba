/* Checkpoint readers: one index over safetensors and torch.save (zip + pickle) files.
 *
 * infvsr_weights_open() sniffs the format by content (not by extension), maps the file
 * read-only and builds an index of every tensor without copying data. Nested pickled
 * dicts are flattened with '.' joining the keys ("model.visual_encoder.norm.weight").
 * Tensors whose stored layout is contiguous are views into the mapping; non-contiguous
 * (strided) views and big-endian archives are gathered/byte-swapped once into memory
 * owned by the index. Tensor data is always contiguous little-endian in its stored dtype.
 *
 * Every failure on hostile input returns INFVSR_ERR_FORMAT (or _IO/_NOMEM) with a message
 * naming the file offset, opcode, entry or key; nothing here asserts on file bytes. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum infvsr_weights_format {
    INFVSR_WEIGHTS_SAFETENSORS = 0,
    INFVSR_WEIGHTS_TORCH_ZIP,
    INFVSR_WEIGHTS_TORCH_LEGACY, /* pre-1.6 torch.save (pickles + raw storages) */
};

struct infvsr_weights;

enum infvsr_status infvsr_weights_open(const char * path, struct infvsr_weights ** out,
                                       struct infvsr_err * err);
void               infvsr_weights_close(struct infvsr_weights * w);

enum infvsr_weights_format infvsr_weights_format(const struct infvsr_weights * w);
const char *               infvsr_weights_path(const struct infvsr_weights * w);

/* Number of tensors and access by index (file order) or by full key path.
 * The returned tensors are views owned by `w` (valid until close); name = key path.
 *
 * find() first looks for `key` exactly, then under the wrapper prefixes found in the file:
 * leading key segments from {state_dict, model, model_state, module, ema, model_ema,
 * ema_model, net, params, params_ema} (training checkpoints {"model": sd}, {"ema": sd},
 * DataParallel's "module.", Lightning's {"state_dict": ...}), the prefix holding the most
 * tensors first (file order breaks ties). Lookups do not modify the index (thread-safe). */
size_t                       infvsr_weights_count(const struct infvsr_weights * w);
const struct infvsr_tensor * infvsr_weights_at(const struct infvsr_weights * w, size_t i);
const struct infvsr_tensor * infvsr_weights_find(const struct infvsr_weights * w, const char * key);
/* Full key path of tensor i (tensor.name holds at most INFVSR_NAME_MAX - 1 characters of it). */
const char *                 infvsr_weights_key_at(const struct infvsr_weights * w, size_t i);

/* The wrapper prefix under which find(w, key) finds `key`: "" when the key itself exists,
 * NULL when find() finds nothing. Valid until close. */
const char * infvsr_weights_wrapper_of(const struct infvsr_weights * w, const char * key);
/* "torch zip, pickle protocol 2" / "safetensors" / "legacy torch.save, pickle protocol 2" */
const char * infvsr_weights_format_name(const struct infvsr_weights * w, char * buf, size_t len);
/* For "missing tensor" messages: the file's top-level entries (with tensor counts, and the
 * non-tensor extras of pickles) and the three keys nearest to `key` (edit distance). */
const char * infvsr_weights_hint(const struct infvsr_weights * w, const char * key, char * buf, size_t len);

/* Value of key `key` in the safetensors "__metadata__" object (string values only), or
 * NULL when absent or for torch.save files. Valid until close. */
const char * infvsr_weights_metadata(const struct infvsr_weights * w, const char * key);

/* Model-loader helper: looks up prefix+key and checks rank, shape and that the dtype is
 * a float type. On success fills `out` as a view (not owned). On failure returns
 * INFVSR_ERR_MODEL with a message naming the key and expected vs actual shape/dtype. */
enum infvsr_status infvsr_weights_get(const struct infvsr_weights * w, const char * prefix,
                                      const char * key, int ndim, const int64_t * shape,
                                      struct infvsr_tensor * out, struct infvsr_err * err);

/* Writes tensors (host memory, any dtype) as a safetensors file. Used by the verification
 * CLI and by tests. Writes to path + ".tmp" and renames on success. */
enum infvsr_status infvsr_safetensors_write(const char * path, const struct infvsr_tensor * tensors,
                                            size_t n, struct infvsr_err * err);
/* The same with explicit key names (names[i] for tensors[i]; NULL: tensor.name) and string
 * metadata pairs for the header's "__metadata__" (meta[2k] = key, meta[2k+1] = value). */
enum infvsr_status infvsr_safetensors_write_ex(const char * path, const struct infvsr_tensor * tensors,
                                               const char * const * names, size_t n, const char * const * meta,
                                               size_t n_meta, struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
