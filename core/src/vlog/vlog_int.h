/*
 * vlog_int.h - what the value log's four files share (private to vlog/):
 * the file and log structs, the record layout's constants and walk, and
 * the functions one file calls in another. The invariants and the lock
 * order are in vlog.c's opening comment.
 *
 *   vlog.c         open and recovery, appends (wmu), sync
 *   vlog_read.c    reads: fetch, check, values lent from mappings, scan
 *   vlog_files.c   the file table, the LRU of descriptors, pins, removal (mu)
 *   vlog_record.c  names, the file header, the record layout and its walk,
 *                  verification: no state
 */
#ifndef STOAT_VLOG_INT_H
#define STOAT_VLOG_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/status.h"
#include "env/env.h"
#include "env/file_window.h"
#include "vlog/vlog.h"

#define VLOG_READ_CHUNK (1u << 20)      /* scan and recovery window */
#define VLOG_GATHER_LEN (1u << 20)      /* gathered records are written at this size */
#define VLOG_DIRECT_LEN (256u << 10)    /* records this large are not copied */
#define VLOG_KEY_STR (STATUS_KEY_MAX + 24)  /* room for "key"@version */
#define VLOG_NONE UINT64_MAX
#define VLOG_LZ4_FAST_MIN 8192      /* values this long get lz4 at VLOG_LZ4_FAST_ACCEL */
#define VLOG_LZ4_FAST_ACCEL 8
#define VLOG_CHECK_GRAIN 16             /* bytes per checked bit: records are longer, so
                                         * no two records start in one grain */

/* Record verdicts of vlog_rec_classify (errors are negative). */
enum { VLOG_REC_OK, VLOG_REC_TORN, VLOG_REC_BAD, VLOG_REC_LOST };

/* vlog_header_check's verdict for a file that holds no header yet. */
#define VLOG_TORN 1

typedef struct vlog_file {
    uint32_t fid;
    int refs;                       /* table + pins + unsynced list */
    int removed;                    /* unlink when the last reference goes */
    int active;                     /* the file appends go to */
    int dirty;                      /* appended to since its last sync */
    int in_lru;
    uint64_t size;                  /* bytes of complete records (+ header) */
    env_file *f;                    /* NULL while closed */
    env_file *wf;                   /* shared mode: the append descriptor of a file
                                     * another process created (vlog_adopt) */
    const char *map;                /* the first map_len bytes, read-only (NULL:
                                     * not mapped); set and cleared under mu, unmapped
                                     * only when no pin is left (eviction, destroy) */
    uint64_t map_len;
    uint64_t map_skip;              /* bytes mapped before map (an encrypted file's
                                     * header); unmapped from map - map_skip */
    _Atomic uint64_t *checked;      /* with map: bit off / VLOG_CHECK_GRAIN is set once the
                                     * record at off passed its checksum */
    int map_failed;                 /* mapping was refused: read by pread */
    int final_size;                 /* shared mode: size is the final one (sealed
                                     * everywhere, looked up once) */
    char *path;
    struct vlog_file *prev, *next;  /* LRU links while in_lru */
} vlog_file;

struct vlog {
    env *env;
    char *dir;
    vlog_options opts;

    pthread_mutex_t mu;
    vlog_file **files;              /* sorted by fid */
    size_t n, cap;
    vlog_file lru;                  /* sentinel; lru.next is least recent */
    int n_open;                     /* files in the LRU */
    uint64_t dir_gen;               /* creations and unlinks so far */
    uint64_t dir_synced_gen;        /* dir_gen at the last directory sync */

    pthread_mutex_t wmu;
    vlog_file *active;
    uint64_t next_fid;
    int error;                      /* sticky write error, 0 if none */
    char error_msg[STATUS_MSG_MAX];
    buf gather;                     /* records not yet written */
    buf seal_scratch;               /* encrypted files: a record's key and value */
    vlog_file **unsynced;           /* sealed and dirty, one reference each */
    size_t n_unsynced, cap_unsynced;
    uint32_t pub_fid;               /* shared mode (mu): the published active file; */
    uint64_t pub_end;               /* ...its published end; files below are final */
};

/* The descriptor appends, truncations and syncs of vf go to. */
static inline env_file *vlog_wfd(const vlog_file *vf)
{
    return vf->wf != NULL ? vf->wf : vf->f;
}

/* State of a walk over a file's records. */
typedef struct vlog_walk {
    file_window w;
    uint32_t fid;
    int strict;             /* scan: damage is an error; recovery: noted */
    vlog_scan_fn fn;        /* NULL: nothing handed out */
    void *arg;
    buf raw;                /* decompressed values handed to fn */
    buf plain;              /* encrypted files: the record opened */
    uint64_t good_end;      /* end of the last intact record */
    int lost;               /* the record chain broke (non-strict only) */
} vlog_walk;

/* vlog_record.c */
void vlog_gather_rec(buf *g, slice ik, slice v, int encoded);
/* Encrypted files (crypt/crypt_env.h): a record is its header, then its
 * key and value sealed as one unit for offset off of f, then the checksum
 * of all that: CRYPT_OVERHEAD bytes longer than in the clear. Gathers one
 * (room reserved by the caller; scratch is working space); *rc gets an
 * error, 0 on success. */
void vlog_gather_sealed(buf *g, env_file *f, uint64_t off, slice ik, slice v, int encoded,
                        buf *scratch, int *rc);
/* The sealed record rec (p->len bytes at p->offset of f): its header and
 * length checked, its key and value opened (the tag checks them: the
 * record's checksum need not be) into plain (reset first) laid out as
 * the record in the clear, checksum bytes zero; *q points at that plain
 * record (p with CRYPT_OVERHEAD bytes less). */
int vlog_rec_unseal(env_file *f, const char *path, const vptr *p, const char *rec, buf *plain,
                    vptr *q);
int vlog_header_check(file_window *w, uint32_t fid);
void vlog_header_encode(char *h, uint32_t fid);
const char *vlog_key_str(slice ik, char *dst, size_t cap);
uint32_t vlog_parse_name(const char *name);
void vlog_quiet_remove(env *e, const char *path);
void vlog_rec_header(char *h, uint32_t klen, uint32_t vword);
int vlog_rec_check_header(const char *path, const vptr *p, const char *rec, slice ikey);
int vlog_rec_verify(const char *path, const vptr *p, const char *rec, slice ikey);
int vlog_rec_value(const char *path, uint64_t off, const char *rec, buf *raw, slice *value);
int vlog_encode_value(int codec, int zstd_level, slice v, buf *out, int *encoded);
int vlog_validate(slice ik, slice v);
int vlog_walk_run(vlog_walk *k);

/* vlog.c */
int vlog_discover(vlog *l, uint32_t fid);

/* vlog_files.c (mu: the _locked ones expect it held) */
void vlog_evict_locked(vlog *l);
int vlog_file_destroy(vlog *l, vlog_file *vf);
vlog_file *vlog_file_new(vlog *l, uint32_t fid);
int vlog_insert_locked(vlog *l, vlog_file *vf);
void vlog_lru_add_locked(vlog *l, vlog_file *vf);
void vlog_lru_unlink_locked(vlog *l, vlog_file *vf);
int vlog_pin(vlog *l, uint32_t fid, vlog_file **out, uint64_t *size, int *active);
int vlog_pin_mapped(vlog *l, uint32_t fid, vlog_file **out, uint64_t *size, int *active,
                    const char **map);
void vlog_unmap_locked(vlog_file *vf);
void vlog_unref(vlog *l, vlog_file *vf);

#endif
