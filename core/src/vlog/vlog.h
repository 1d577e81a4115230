/*
 * vlog.h - the value log: append-only files NNNNNN.vlog holding the large
 * values that the LSM tree only points to (format: core/FORMAT.md, "Value
 * log").
 *
 * A vlog file is a 16-byte header followed by records, each one internal
 * key and its value, framed by lengths, a header check and a checksum:
 *
 *     fixed32 key_len | fixed32 value_len | fixed32 header_check |
 *     key | value | fixed64 checksum64(everything before it)
 *
 * From format 2 on, value_len's top bit (VLOG_VLEN_ENCODED) says the value
 * is stored compressed: codec byte | varint32 raw length | compressed
 * bytes (value_len counts these stored bytes). Format 1 files (never
 * compressed) are still read.
 *
 * A vptr (ikey.h) addresses one whole record: file id, offset of its first
 * byte, and its length (VLOG_REC_OVERHEAD + key_len + stored value_len).
 *
 * Reads go through a read-only mapping of the file where the env offers
 * one (env_map.h): the active file is mapped to file_size bytes and read
 * only below its published size. In shared mode other processes append
 * to the active file and a repair cuts back what a dead one left, but
 * never below what was published (vlog_set_published): a file every
 * process has sealed (below the published one) is mapped whole, once its
 * final size is known; the published one to file_size bytes, read only
 * below its published end; a record past what this process knows is read
 * with pread (which looks at the file's size again), never through the
 * mapping. A record's checksum is verified on its first read and
 * remembered (one bit per 16 bytes of file), later reads check only its
 * header, length and key; an uncompressed value is handed out as a
 * borrowed pointer into the mapping, the file pinned meanwhile
 * (vlog_get). Files of envs without mappings are read with pread and
 * verified on every read.
 *
 * Files: ids are 32-bit, never reused, and grow by one per new file. Once
 * any file exists, the newest file is the active one: appends go to it; it
 * is never removed. Every other file is sealed (read-only). At most
 * max_open_files sealed files stay open (LRU); files in use by a read or a
 * scan stay open past that bound until released.
 *
 * Opening a writable log recovers the newest file: its records are checked
 * front to back and a torn tail (what a crash during appends leaves) is cut
 * off; appends then continue in that file. Older files are kept as they
 * are. Damage in the middle of a file is not repaired; it is reported by
 * the read or scan that meets it (STOAT_ECORRUPT with file and offset).
 *
 * Durability: appends are not synced; vlog_sync makes every record appended
 * so far durable, including the names of new files and removals. The
 * database syncs the value log before it writes (in sync mode: syncs) the
 * WAL record that points into it.
 *
 * Threads: every function may be called from any thread, except that
 * vlog_close must be the last call. Appends, syncs and rotations are
 * serialised on an internal writer lock (the database's front writer is
 * normally their only caller). Reads, checks and scans run concurrently
 * with each other and with appends; they see every record whose append has
 * returned.
 */
#ifndef STOAT_VLOG_H
#define STOAT_VLOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "env/env.h"
#include "base/ikey.h"
#include "base/slice.h"

#define VLOG_MAGIC 0x474c5654414f5453ull  /* "STOATVLG" little-endian */
#define VLOG_FORMAT_VERSION 2               /* written; 1 (no compression) is still read */
#define VLOG_VLEN_ENCODED 0x80000000u       /* value_len flag: the value is compressed */
#define VLOG_COMPRESS_MIN 64                /* shorter values are never compressed */
#define VLOG_HEADER_LEN 16                 /* fixed64 magic | fixed32 version | fixed32 fid */
#define VLOG_REC_HEADER_LEN 12             /* key_len | value_len | header_check */
#define VLOG_REC_OVERHEAD 20               /* record header + fixed64 checksum */
#define VLOG_MAX_KEY_LEN (STOAT_MAX_KEY_SIZE + IKEY_SUFFIX_LEN)
#define VLOG_DEFAULT_FILE_SIZE (256ull << 20)
#define VLOG_DEFAULT_MAX_OPEN 64

typedef struct vlog vlog;

typedef struct vlog_options {
    /* A file is rolled over when the next record would take it past this
     * many bytes (a single larger record still gets a file of its own).
     * 0 = VLOG_DEFAULT_FILE_SIZE. */
    uint64_t file_size;
    /* Nothing is written: no truncation, appends fail STOAT_EREADONLY. */
    int read_only;
    /* Sealed files kept open at most (LRU); 0 = VLOG_DEFAULT_MAX_OPEN. */
    int max_open_files;
    /* Several processes append to this log, one at a time under their
     * commit lock (db/shared.c): appends go to the file vlog_adopt names,
     * and reads learn of files and bytes other processes added. */
    int shared;
    /* With shared: open without recovering anything (another process
     * did): every file is sealed until vlog_adopt. */
    int attach;
    /* Values of at least VLOG_COMPRESS_MIN bytes are stored compressed
     * with this codec (STOAT_COMPRESSION_*; 0 = none) when that saves at
     * least an eighth of them; zstd at zstd_level. */
    int compression;
    int zstd_level;
    /* 1: never map files (every read is a pread; for comparisons). */
    int no_map;
#ifdef STOAT_TESTING
    /* Test builds only: called by every vlog_read and vlog_check after the
     * file is pinned and before it is read (NULL: nothing). */
    void (*read_hook)(void *arg, uint32_t fid);
    void *read_hook_arg;
#endif
} vlog_options;

/* Bytes a record of this key and value takes in a file (= vptr.len). */
static inline uint64_t vlog_record_len(size_t key_len, size_t value_len)
{
    return VLOG_REC_OVERHEAD + (uint64_t)key_len + (uint64_t)value_len;
}

/* "dir/NNNNNN.vlog" (at least 6 digits) in a malloc'd string, NULL on ENOMEM. */
char *vlog_path(const char *dir, uint32_t fid);

/*
 * Opens the value log in the existing directory dir (o may be NULL for the
 * defaults). Writable: the newest file's torn tail is truncated and synced
 * and appends continue in it, unless it is full or its record chain is
 * broken (then a new file is started). An empty directory gets its first
 * file on the first append. read_only: files are left as they are and the
 * newest file's torn tail is simply not readable. STOAT_ECORRUPT for a file
 * whose header is wrong, STOAT_ENOTSUP for a newer format version. *out is
 * NULL on error.
 */
int vlog_open(env *e, const char *dir, const vlog_options *o, vlog **out);

/* Closes every file (without syncing) and frees l. No call may be running
 * or follow. NULL is fine. */
void vlog_close(vlog *l);

/*
 * Appends one record to the active file, rolling over to a new file first
 * when the record would take the active one past file_size. Fills *ptr.
 * ikey is an internal key (at least 8 bytes, at most VLOG_MAX_KEY_LEN:
 * STOAT_EINVAL / STOAT_ETOOBIG), value at most STOAT_MAX_VALUE_SIZE
 * (STOAT_ETOOBIG). Not synced. A failed append leaves no partial record
 * behind (it is cut off); if even that fails, or after a failed sync, every
 * later append and sync returns the first error (sticky). *ptr is zeroed on
 * error.
 */
int vlog_append(vlog *l, slice ikey, slice value, vptr *ptr);

/*
 * Appends n records (ikeys[i], values[i]) in order, with as few writes as
 * possible (small records are gathered into one buffer), and fills
 * ptrs[0..n-1]. Same rules as vlog_append; records are checked before
 * anything is written. On error every ptrs[i] is zeroed (records already
 * written are unreferenced garbage).
 */
int vlog_append_batch(vlog *l, const slice *ikeys, const slice *values, size_t n, vptr *ptrs);

/*
 * Shared mode: fsyncs the files numbered from..to that exist, whoever
 * appended to them (other processes' appends too: an fsync covers the
 * file, not a descriptor). For the WAL records and tables of every process
 * that point into them. 0 when not shared.
 */
int vlog_sync_shared(vlog *l, uint32_t from, uint32_t to);

/*
 * Shared mode: file fid is the published one appends go to, and its
 * records up to end are published (no repair ever cuts below it); every
 * file below fid is sealed for every process: no byte of it changes
 * again. Reads may map them (above). Only moves forward.
 */
void vlog_set_published(vlog *l, uint32_t fid, uint64_t end);

/*
 * Makes everything appended so far durable: fsyncs files sealed since the
 * last sync, then the active file, then the directory when files were
 * created or removed since. Holds the writer lock meanwhile (appends wait).
 * A failure is sticky (never retry an fsync: the kernel may have
 * dropped the dirty pages).
 */
int vlog_sync(vlog *l);

/*
 * Reads the record at ptr and copies its value into out (reset first).
 * The caller knows the record's internal key: it must match. Errors:
 * STOAT_ENOTFOUND when file ptr->fid does not exist (removed by GC, so a
 * reader that took the pointer from an old snapshot may look the key up
 * again; the database maps it to corruption where the file must exist);
 * STOAT_ECORRUPT, naming file, offset and key, when the pointer reaches
 * past the end of the file or has a bad length, or the record fails its
 * checks or holds another key. Reads exactly ptr->len bytes.
 */
int vlog_read(vlog *l, const vptr *ptr, slice ikey, buf *out);

/*
 * A value read by vlog_get: either borrowed from a file's mapping (pin
 * holds that file open and mapped, even past its removal, until released)
 * or held in buf (a copy read by pread, or a decompressed value). Zero it
 * before first use; one thread at a time. With keep_pin set (a scan's
 * reads), the mapped file a value came from stays pinned even when the
 * value was copied out of it: the next value from the same file then
 * takes no lock, and vlog_value_prefetch can reach its records.
 */
typedef struct vlog_value {
    buf buf;
    struct vlog_file *pin;
    uint64_t size;          /* bytes of the pinned file readable when pinned */
    int keep_pin;
} vlog_value;

/*
 * As vlog_read, but without a copy where it can: *value points into the
 * mapping of a sealed file (uncompressed values) or into v->buf. First
 * releases what v held before (so *value of an earlier call is then
 * invalid); a new pin on the same file as the one held is taken without
 * locking. *value is valid until the next vlog_get on v, or
 * vlog_value_release / vlog_value_free. Same return codes as vlog_read.
 */
int vlog_get(vlog *l, const vptr *ptr, slice ikey, vlog_value *v, slice *value);

/* Drops v's pin (if any); keeps its buffer for reuse. */
void vlog_value_release(vlog *l, vlog_value *v);

/* Drops v's pin and frees its buffer. */
void vlog_value_free(vlog *l, vlog_value *v);

/*
 * Read-ahead for the record at ptr (a scan is about to read it), when its
 * file is mapped: the CPU is asked for its first cache lines (a prefetch
 * never faults, so no pin is needed), and with cold = 1 the kernel for
 * its pages (MADV_WILLNEED: a system call, worth it only when reads wait
 * for the disk). Nothing when the file is not mapped. Never fails.
 */
void vlog_prefetch(vlog *l, const vptr *ptr, int cold);

/*
 * As vlog_prefetch(l, ptr, 0), for the value a scan reads next: without a
 * lock when ptr is in the file v has pinned (and the record's checked bit
 * is asked for too), through vlog_prefetch otherwise. Never fails.
 */
void vlog_value_prefetch(vlog *l, const vlog_value *v, const vptr *ptr);

/* As vlog_read without handing the value out: checks that ptr addresses a
 * complete record with good checksums and key ikey (for WAL replay). Same
 * return codes. */
int vlog_check(vlog *l, const vptr *ptr, slice ikey);

/*
 * Ids of every file, ascending (so the active file, if any, is last), in a
 * malloc'd array the caller frees (NULL when *n is 0).
 */
int vlog_files(vlog *l, uint32_t **fids, size_t *n);

/* Bytes in file fid that records may occupy (its size, minus a torn tail
 * in read-only mode); 0 when there is no such file. */
uint64_t vlog_file_size(vlog *l, uint32_t fid);

/* Id of the active file, 0 when there is none yet (or read-only: the
 * newest file, which is never written). */
uint32_t vlog_active_fid(vlog *l);

/*
 * Seals the active file and starts a new one, so that GC never rewrites
 * values into the file it collects. An active file without records is
 * kept (nothing to seal); with no active file this does nothing. The new
 * file's name is durable after the next vlog_sync.
 */
int vlog_rotate(vlog *l);

/*
 * Calls fn for every record of the sealed file fid in order, with its
 * pointer, internal key and value (borrowed until fn returns). A nonzero
 * return from fn stops the scan and is returned. STOAT_EINVAL for the
 * active file, STOAT_ENOTFOUND for a missing one, STOAT_ECORRUPT (file and
 * offset) for a damaged record. A torn tail (a last record cut short by
 * end of file or failing its checksum at end of file, or a tail of zeros:
 * what a crash leaves in a file sealed without sync) ends the scan with 0.
 */
typedef int (*vlog_scan_fn)(void *arg, const vptr *p, slice ikey, slice value);
int vlog_scan(vlog *l, uint32_t fid, vlog_scan_fn fn, void *arg);

/*
 * Removes file fid: it disappears from the log at once (later reads get
 * STOAT_ENOTFOUND), and its file is closed and unlinked as soon as no read
 * or scan uses it any more (at once when none does). The unlink is durable
 * after the next vlog_sync. A file sealed but not yet synced is not synced
 * any more. Takes the writer lock briefly (waits for a running sync).
 * STOAT_EINVAL for the newest (active) file, STOAT_ENOTFOUND for a missing
 * one, STOAT_EREADONLY when read-only. The caller makes sure first that no
 * durable pointer still needs the file (GC: the rewritten values and the
 * LSM entries pointing to them are durable).
 */
int vlog_remove_file(vlog *l, uint32_t fid);

/*
 * Shared mode, with the commit lock of every process held: makes file fid,
 * whose complete records end at `end` (what the last committer
 * published), the active file, so the next appends go after them; fid 0:
 * no file yet (the next append creates one, numbered above every file
 * any process made). A file of this process's that was active is sealed.
 */
int vlog_adopt(vlog *l, uint32_t fid, uint64_t end);

/* Sealed files currently held open by the LRU (<= max_open_files), for
 * tests and statistics. */
int vlog_open_count(vlog *l);

#endif
