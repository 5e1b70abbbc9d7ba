/* The input's FFmpeg errors, explained (see media_internal.h).
 *
 * FFmpeg's error codes name a symptom, not the cause, and for an upload the symptom is often
 * misleading: a Matroska header cut short reads as EIO ("Input/output error"), a corrupt
 * sample count or a file with too many streams as ENOMEM ("Cannot allocate memory"), a
 * format outside the demuxer allow-list as EINVAL. Here each code gets the meaning it has
 * for bytes someone uploaded; FFmpeg's own text stays in parentheses for operators. */
#include "media_internal.h"

#include <errno.h>
#include <stdio.h>

/* What an FFmpeg error code means when it comes from demuxing or decoding an input. */
static const char * input_meaning(int averr) {
    switch (averr) {
        case AVERROR_INVALIDDATA:       return "corrupt or invalid data";
        case AVERROR_EOF:
        case AVERROR(EIO):              return "the input ends too early (truncated) or its container structure is corrupt";
        case AVERROR(ENOMEM):           return "the input declares a size or count too large to accept (corrupt file?)";
        case AVERROR(EINVAL):           return "invalid values in the input (corrupt header?)";
        case AVERROR(ERANGE):           return "a value in the input is out of range (corrupt file?)";
        case AVERROR_PATCHWELCOME:
        case AVERROR(ENOSYS):           return "the input uses a feature FFmpeg does not support";
        case AVERROR_DECODER_NOT_FOUND: return "no decoder for its codec";
        case AVERROR_DEMUXER_NOT_FOUND: return "unknown container format";
        case AVERROR_STREAM_NOT_FOUND:  return "no video stream";
        case AVERROR_BUG:
        case AVERROR_BUG2:              return "FFmpeg failed on this input (internal error)";
        default:                        return NULL;
    }
}

enum infvsr_status infvsr_media_input_err(struct infvsr_err * err, int averr, bool read_failed, const char * what) {
    char ff[AV_ERROR_MAX_STRING_SIZE] = { 0 };
    av_strerror(averr, ff, sizeof(ff));
    if (averr == AVERROR_EXIT) return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "%s: reading was interrupted", what);
    if (read_failed) /* our own bytes could not be read: the server's fault, not the input's */
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: reading the stored input failed (%s)", what, ff);
    const char * meaning = input_meaning(averr);
    if (!meaning) meaning = "the input cannot be read (corrupt or unsupported)"; /* FFmpeg's text alone misleads */
    return infvsr_err_set(err, INFVSR_ERR_FORMAT, "%s: %s (FFmpeg: %s)", what, meaning, ff);
}
