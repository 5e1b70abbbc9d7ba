/* ZIP central-directory reader (APPNOTE.TXT 6.3: sections 4.3.7 local header,
 * 4.3.12 central header, 4.3.14-16 ZIP64 end records, 4.5.3 ZIP64 extra field).
 *
 * torch.save sets general-purpose bit 3 in every local header, so the sizes there are
 * zero: sizes come from the central directory, and only the local header's name and
 * extra lengths are read (its extra field holds the padding that aligns data to 64). */
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

#include "io/mapped_file.h"

#define SIG_LOCAL       0x04034b50u
#define SIG_CENTRAL     0x02014b50u
#define SIG_EOCD        0x06054b50u
#define SIG_EOCD64      0x06064b50u
#define SIG_EOCD64_LOC  0x07064b50u
#define EOCD_SIZE       22
#define EOCD64_LOC_SIZE 20
#define EOCD64_SIZE     56
#define CENTRAL_SIZE    46
#define LOCAL_SIZE      30
#define MAX_ENTRIES     (1u << 20)

struct eocd {
    uint64_t n_entries;
    uint64_t cd_size;
    uint64_t cd_off;
};

/* The EOCD is the last record; a trailing comment of up to 65535 bytes may follow it,
 * so the search is bounded to the last 64 KiB + 22 bytes. */
static enum infvsr_status find_eocd(const uint8_t * d, uint64_t size, uint64_t * pos, struct infvsr_err * err) {
    if (size < EOCD_SIZE) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: file too short (%llu bytes) for an end record", (unsigned long long)size);
    uint64_t lo = size > 0xffffu + EOCD_SIZE ? size - 0xffffu - EOCD_SIZE : 0;
    for (uint64_t p = size - EOCD_SIZE + 1; p-- > lo;) {
        if (infvsr__rd_u32(d + p) == SIG_EOCD && p + EOCD_SIZE + infvsr__rd_u16(d + p + 20) <= size) {
            *pos = p;
            return INFVSR_OK;
        }
    }
    return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: end of central directory record not found (truncated file?)");
}

static enum infvsr_status read_eocd(const uint8_t * d, uint64_t size, struct eocd * e, struct infvsr_err * err) {
    uint64_t           p  = 0;
    enum infvsr_status st = find_eocd(d, size, &p, err);
    if (st) return st;
    uint16_t disk = infvsr__rd_u16(d + p + 4), cd_disk = infvsr__rd_u16(d + p + 6);
    uint16_t n_disk = infvsr__rd_u16(d + p + 8), n_total = infvsr__rd_u16(d + p + 10);
    uint32_t cd_size = infvsr__rd_u32(d + p + 12), cd_off = infvsr__rd_u32(d + p + 16);
    e->n_entries = n_total;
    e->cd_size   = cd_size;
    e->cd_off    = cd_off;
    if (n_total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu || n_disk == 0xffff) {
        /* ZIP64: a locator sits right before the EOCD and points to the ZIP64 EOCD. */
        if (p < EOCD64_LOC_SIZE || infvsr__rd_u32(d + p - EOCD64_LOC_SIZE) != SIG_EOCD64_LOC) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: ZIP64 end locator missing before offset %llu",
                                  (unsigned long long)p);
        }
        uint64_t off64 = infvsr__rd_u64(d + p - EOCD64_LOC_SIZE + 8);
        if (!infvsr__range_ok(off64, EOCD64_SIZE, p - EOCD64_LOC_SIZE) || infvsr__rd_u32(d + off64) != SIG_EOCD64) {
            return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: bad ZIP64 end record offset %llu",
                                  (unsigned long long)off64);
        }
        disk         = (uint16_t)infvsr__rd_u32(d + off64 + 16);
        cd_disk      = (uint16_t)infvsr__rd_u32(d + off64 + 20);
        e->n_entries = infvsr__rd_u64(d + off64 + 32);
        e->cd_size   = infvsr__rd_u64(d + off64 + 40);
        e->cd_off    = infvsr__rd_u64(d + off64 + 48);
        size = off64; /* the central directory must end before the ZIP64 record */
    } else {
        size = p;
    }
    if (disk != 0 || cd_disk != 0) return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: multi-disk archives are not supported");
    if (!infvsr__range_ok(e->cd_off, e->cd_size, size)) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT,
                              "zip: central directory (offset %llu, %llu bytes) out of range of the file",
                              (unsigned long long)e->cd_off, (unsigned long long)e->cd_size);
    }
    if (e->n_entries > MAX_ENTRIES || e->n_entries > e->cd_size / CENTRAL_SIZE) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: %llu entries do not fit a %llu-byte central directory",
                              (unsigned long long)e->n_entries, (unsigned long long)e->cd_size);
    }
    return INFVSR_OK;
}

/* Applies the ZIP64 extended-information extra field (id 0x0001): it holds, in this
 * order, only the fields whose 32-bit central-directory value is 0xffffffff. */
static enum infvsr_status apply_zip64_extra(const uint8_t * x, uint32_t xlen, uint64_t * usize, uint64_t * csize,
                                            uint64_t * loff, const char * name, struct infvsr_err * err) {
    for (uint32_t p = 0; p + 4 <= xlen;) {
        uint16_t id = infvsr__rd_u16(x + p), len = infvsr__rd_u16(x + p + 2);
        if (p + 4 + len > xlen) break;
        if (id == 0x0001) {
            const uint8_t * f = x + p + 4;
            uint32_t        left = len;
            uint64_t *      fields[3] = { usize, csize, loff };
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu) continue;
                if (left < 8) {
                    return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: entry '%s': ZIP64 extra field too short", name);
                }
                *fields[i] = infvsr__rd_u64(f);
                f += 8;
                left -= 8;
            }
            return INFVSR_OK;
        }
        p += 4u + len;
    }
    if (*usize == 0xffffffffu || *csize == 0xffffffffu || *loff == 0xffffffffu) {
        return infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: entry '%s': ZIP64 extra field missing", name);
    }
    return INFVSR_OK;
}

static int entry_cmp(const void * a, const void * b) {
    return strcmp(((const struct infvsr_zip_entry *)a)->name, ((const struct infvsr_zip_entry *)b)->name);
}

enum infvsr_status infvsr_zip_open(struct infvsr_zip * z, const uint8_t * d, uint64_t size, struct infvsr_err * err) {
    memset(z, 0, sizeof *z);
    struct eocd        e;
    enum infvsr_status st = read_eocd(d, size, &e, err);
    if (st) return st;
    z->entries = calloc(e.n_entries ? e.n_entries : 1, sizeof *z->entries);
    z->names   = malloc(e.cd_size + 1); /* names are a subset of the directory bytes */
    if (!z->entries || !z->names) {
        infvsr_zip_close(z);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "zip: out of memory for %llu entries", (unsigned long long)e.n_entries);
    }
    uint64_t p = e.cd_off, end = e.cd_off + e.cd_size, names_used = 0;
    for (uint64_t i = 0; i < e.n_entries; i++) {
        if (!infvsr__range_ok(p, CENTRAL_SIZE, end) || infvsr__rd_u32(d + p) != SIG_CENTRAL) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: bad central directory header %llu at offset %llu",
                                (unsigned long long)i, (unsigned long long)p);
            goto fail;
        }
        const uint8_t * c      = d + p;
        uint16_t        flags  = infvsr__rd_u16(c + 8), method = infvsr__rd_u16(c + 10);
        uint64_t        csize  = infvsr__rd_u32(c + 20), usize = infvsr__rd_u32(c + 24);
        uint16_t        nlen   = infvsr__rd_u16(c + 28), xlen = infvsr__rd_u16(c + 30), clen = infvsr__rd_u16(c + 32);
        uint64_t        loff   = infvsr__rd_u32(c + 42);
        if (!infvsr__range_ok(p + CENTRAL_SIZE, (uint64_t)nlen + xlen + clen, end)) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: central directory header at offset %llu overruns the directory",
                                (unsigned long long)p);
            goto fail;
        }
        char * name = z->names + names_used;
        memcpy(name, c + CENTRAL_SIZE, nlen);
        name[nlen] = '\0';
        names_used += nlen + 1u;
        if (memchr(name, '\0', nlen)) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: entry name at offset %llu contains a NUL byte", (unsigned long long)p);
            goto fail;
        }
        st = apply_zip64_extra(c + CENTRAL_SIZE + nlen, xlen, &usize, &csize, &loff, name, err);
        if (st) goto fail;
        if (method != 0) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT,
                                "zip: entry '%s' uses compression method %u; only stored (0) entries are supported",
                                name, method);
            goto fail;
        }
        if (flags & 1u) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: entry '%s' is encrypted", name);
            goto fail;
        }
        if (csize != usize) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: stored entry '%s' has compressed size %llu != size %llu",
                                name, (unsigned long long)csize, (unsigned long long)usize);
            goto fail;
        }
        if (!infvsr__range_ok(loff, LOCAL_SIZE, size) || infvsr__rd_u32(d + loff) != SIG_LOCAL) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: entry '%s': local header offset %llu out of range or invalid",
                                name, (unsigned long long)loff);
            goto fail;
        }
        uint64_t data_off = loff + LOCAL_SIZE + infvsr__rd_u16(d + loff + 26) + infvsr__rd_u16(d + loff + 28);
        if (!infvsr__range_ok(data_off, usize, size)) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT,
                                "zip: entry '%s': data (offset %llu, %llu bytes) extends beyond the file (%llu bytes)",
                                name, (unsigned long long)data_off, (unsigned long long)usize, (unsigned long long)size);
            goto fail;
        }
        z->entries[i].name     = name;
        z->entries[i].data_off = data_off;
        z->entries[i].size     = usize;
        p += CENTRAL_SIZE + (uint64_t)nlen + xlen + clen;
    }
    z->n_entries = (size_t)e.n_entries;
    qsort(z->entries, z->n_entries, sizeof *z->entries, entry_cmp);
    for (size_t i = 1; i < z->n_entries; i++) {
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0) {
            st = infvsr_err_set(err, INFVSR_ERR_FORMAT, "zip: duplicate entry '%s'", z->entries[i].name);
            goto fail;
        }
    }
    return INFVSR_OK;
fail:
    infvsr_zip_close(z);
    return st;
}

void infvsr_zip_close(struct infvsr_zip * z) {
    free(z->entries);
    free(z->names);
    memset(z, 0, sizeof *z);
}

const struct infvsr_zip_entry * infvsr_zip_find(const struct infvsr_zip * z, const char * name) {
    struct infvsr_zip_entry probe = { .name = name };
    return z->n_entries ? bsearch(&probe, z->entries, z->n_entries, sizeof *z->entries, entry_cmp) : NULL;
}
