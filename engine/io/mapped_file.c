#include "io/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum infvsr_status infvsr_mapped_file_open(struct infvsr_mapped_file * f, const char * path,
                                           struct infvsr_err * err) {
    f->data = NULL;
    f->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { /* mmap of length 0 fails; an empty file is simply zero bytes */
        close(fd);
        return INFVSR_OK;
    }
    void * p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) {
        return infvsr_err_set(err, INFVSR_ERR_IO, "%s: cannot mmap %lld bytes: %s", path,
                              (long long)st.st_size, strerror(e));
    }
    f->data = p;
    f->size = (size_t)st.st_size;
    return INFVSR_OK;
}

void infvsr_mapped_file_close(struct infvsr_mapped_file * f) {
    if (f->data) munmap((void *)f->data, f->size);
    f->data = NULL;
    f->size = 0;
}
