/* The input error explanations of server/media (media_errors.c): every FFmpeg code the reader
 * meets gets the meaning it has for an upload, the right status (the input's fault: FORMAT;
 * a failed read of the stored bytes: IO; an interrupt: CANCELLED), and FFmpeg's own text
 * only after the explanation. The codes that misled users are checked first: EIO at the end
 * of a truncated header, ENOMEM for a corrupt count, EINVAL. */
#include <errno.h>

#include "check.h"
#include "media_internal.h"

static void expect(int averr, bool read_failed, enum infvsr_status st, const char * meaning) {
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_media_input_err(&err, averr, read_failed, "uploaded input"), st);
    CHECK_EQ_INT(err.status, st);
    CHECK_STR_CONTAINS(err.msg, "uploaded input: ");
    CHECK_STR_CONTAINS(err.msg, meaning);
    /* FFmpeg's symptom never comes first */
    char ff[AV_ERROR_MAX_STRING_SIZE] = { 0 };
    av_strerror(averr, ff, sizeof(ff));
    const char * after = err.msg + strlen("uploaded input: ");
    CHECK_MSG(strncmp(after, ff, strlen(ff)) != 0, "'%s' starts with FFmpeg's text", err.msg);
}

static void test_input_faults(void) {
    expect(AVERROR(EIO), false, INFVSR_ERR_FORMAT, "the input ends too early (truncated)");
    expect(AVERROR_EOF, false, INFVSR_ERR_FORMAT, "the input ends too early (truncated)");
    expect(AVERROR(ENOMEM), false, INFVSR_ERR_FORMAT, "declares a size or count too large to accept");
    expect(AVERROR_INVALIDDATA, false, INFVSR_ERR_FORMAT, "corrupt or invalid data");
    expect(AVERROR(EINVAL), false, INFVSR_ERR_FORMAT, "invalid values in the input");
    expect(AVERROR_PATCHWELCOME, false, INFVSR_ERR_FORMAT, "a feature FFmpeg does not support");
    expect(AVERROR_DECODER_NOT_FOUND, false, INFVSR_ERR_FORMAT, "no decoder");
    expect(AVERROR(EBUSY), false, INFVSR_ERR_FORMAT, "the input cannot be read (corrupt or unsupported)");
}

static void test_ours_and_interrupts(void) {
    expect(AVERROR(EIO), true, INFVSR_ERR_IO, "reading the stored input failed");
    expect(AVERROR_INVALIDDATA, true, INFVSR_ERR_IO, "reading the stored input failed");
    struct infvsr_err err = { 0 };
    CHECK_EQ_INT(infvsr_media_input_err(&err, AVERROR_EXIT, false, "x"), INFVSR_ERR_CANCELLED);
    CHECK_STR_CONTAINS(err.msg, "interrupted");
    CHECK_EQ_INT(infvsr_media_input_err(NULL, AVERROR(EIO), false, "x"), INFVSR_ERR_FORMAT); /* err may be NULL */
}

static const struct test_case tests[] = {
    TEST(test_input_faults),
    TEST(test_ours_and_interrupts),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
