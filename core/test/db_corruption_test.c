/*
 * db_corruption_test.c - damaged files of every kind: WAL, SST (data
 * blocks, filter, properties, index, footer), MANIFEST, and tables that
 * are missing or unknown.
 *
 * Each test writes a small database, closes it, damages one file with
 * plain POSIX calls (db_util.h) and opens it again. The rule checked
 * everywhere: opening or reading returns STOAT_ECORRUPT (naming the file
 * where the test can tell), or the data comes back right; never a wrong
 * value, never a key lost without an error, never a crash. A torn tail
 * (the end of the last record of a WAL or MANIFEST) is not damage: it is
 * cut off and the database opens with what came before.
 *
 * File layouts used to aim the damage (see core/FORMAT.md): WAL and
 * MANIFEST are a 16-byte header and records "fixed32 len | fixed32
 * checksum(payload) | fixed32 checksum(the 8 bytes before) | payload";
 * an SST ends in a 68-byte footer whose first 48 bytes are the filter,
 * properties and index handles (fixed64 offset, fixed64 size), and every
 * stored block is followed by a 13-byte trailer.
 */
#include "db_util.h"
#include "test.h"

#define CKEYS 1500
#define LOG_HEADER_LEN 16
#define LOG_REC_HEADER 12
#define SST_FOOTER 68
#define SST_TRAILER 13

static void key_of(int i, char out[16])
{
    snprintf(out, 16, "c%05u", (unsigned)i % 100000u);
}

static size_t vlen_of(int i)
{
    return 20 + (size_t)i % 80;
}

static void base_options(stoat_options *o)
{
    dbu_small_options(o);
    o->memtable_size = 4 << 20;
    o->table_size = 16 << 20;
    o->compression = STOAT_COMPRESSION_NONE;
}

static stoat_db *open_db(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    base_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static void put_keys(stoat_db *db, int from, int to)
{
    char k[16], v[128];

    for (int i = from; i < to; i++) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, vlen_of(i));
        REQUIRE_OK(stoat_put(db, k, strlen(k), v, vlen_of(i)));
    }
}

/* What reading a damaged database showed. */
typedef struct probe {
    int open_rc;
    int corrupt;        /* reads that returned STOAT_ECORRUPT */
    int wrong;          /* wrong values, lost keys, unexpected errors */
    char msg[256];      /* the first error message */
} probe;

static void probe_error(probe *p, int rc, const char *msg)
{
    if (rc == STOAT_ECORRUPT)
        p->corrupt++;
    else
        p->wrong++;
    if (p->msg[0] == '\0')
        snprintf(p->msg, sizeof(p->msg), "%s", msg);
}

/* Every get of keys [0, n): right value, or ECORRUPT. */
static void probe_gets(probe *p, stoat_db *db, int n)
{
    for (int i = 0; i < n; i++) {
        char k[16];
        void *v = NULL;
        size_t vlen;
        int rc;

        key_of(i, k);
        rc = stoat_get(db, k, strlen(k), &v, &vlen);
        if (rc == STOAT_ENOTFOUND)
            probe_error(p, rc, "a key was lost (get said not found)");
        else if (rc != 0)
            probe_error(p, rc, stoat_errmsg(db));
        else if (!dbu_value_is((uint64_t)i, vlen_of(i), v, vlen))
            p->wrong++;
        stoat_free(v);
    }
}

/* A full scan: keys [0, n) in order with right values, or stops with ECORRUPT. */
static void probe_scan(probe *p, stoat_db *db, int n)
{
    stoat_iter *it;
    int i = 0, rc;

    if ((rc = stoat_iter_open(db, NULL, &it)) != 0) {
        probe_error(p, rc, stoat_errmsg(db));
        return;
    }
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it), i++) {
        const void *k, *v;
        size_t klen, vlen;
        char want[16];

        key_of(i, want);
        if ((rc = stoat_iter_key(it, &k, &klen)) != 0 ||
            (rc = stoat_iter_value(it, &v, &vlen)) != 0) {
            probe_error(p, rc, stoat_errmsg(db));
            break;
        }
        if (i >= n || klen != strlen(want) || memcmp(k, want, klen) != 0 ||
            !dbu_value_is((uint64_t)i, vlen_of(i), v, vlen)) {
            p->wrong++;
            break;
        }
    }
    if ((rc = stoat_iter_status(it)) != 0)
        probe_error(p, rc, stoat_errmsg(db));
    else if (i < n && !stoat_iter_valid(it))
        p->wrong++; /* ended early without an error */
    stoat_iter_close(it);
}

/* Opens dir (writable unless read_only) and reads keys [0, n) every way. */
static probe probe_db(const char *dir, int n, int read_only)
{
    stoat_options o;
    stoat_db *db;
    probe p;

    memset(&p, 0, sizeof(p));
    base_options(&o);
    o.read_only = read_only;
    p.open_rc = stoat_open(dir, &o, &db);
    if (p.open_rc != 0) {
        snprintf(p.msg, sizeof(p.msg), "%s", stoat_errmsg(NULL));
        return p;
    }
    probe_gets(&p, db, n);
    probe_scan(&p, db, n);
    if (stoat_close(db) != 0)
        p.wrong++;
    return p;
}

/* The damage was caught: open or a read said ECORRUPT, nothing was wrong. */
static int probe_caught(const probe *p)
{
    return p->open_rc == STOAT_ECORRUPT || (p->open_rc == 0 && p->corrupt > 0 && p->wrong == 0);
}

/* Nothing wrong was returned (the damage may have been harmless). */
static int probe_safe(const probe *p)
{
    return p->open_rc == STOAT_ECORRUPT || (p->open_rc == 0 && p->wrong == 0);
}

#define CHECK_CAUGHT(p, what)                                                         \
    do {                                                                              \
        if (!probe_caught(&(p)))                                                      \
            test_fail(__FILE__, __LINE__, "%s not caught: open %d, %d corrupt, %d wrong: %s", \
                      what, (p).open_rc, (p).corrupt, (p).wrong, (p).msg);            \
    } while (0)

/* The offsets of a log file's records (WAL and MANIFEST framing); returns
 * how many, up to max. */
static int log_records(const char *path, uint64_t *offs, uint32_t *lens, int max)
{
    size_t len;
    char *data = dbu_read_file(path, &len);
    uint64_t at = LOG_HEADER_LEN;
    int n = 0;

    while (at + LOG_REC_HEADER <= len && n < max) {
        uint32_t plen = (uint32_t)(unsigned char)data[at] |
                        (uint32_t)(unsigned char)data[at + 1] << 8 |
                        (uint32_t)(unsigned char)data[at + 2] << 16 |
                        (uint32_t)(unsigned char)data[at + 3] << 24;

        if (at + LOG_REC_HEADER + plen > len)
            break;
        offs[n] = at;
        lens[n++] = plen;
        at += LOG_REC_HEADER + plen;
    }
    free(data);
    return n;
}

/* The only file of dir ending in suffix with data beyond a header. */
static void only_file(const char *dir, const char *suffix, char *out)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    int n = dbu_list(dir, suffix, names), found = 0;

    for (int i = 0; i < n; i++) {
        if (dbu_file_size(dbu_path(p, dir, names[i])) > LOG_HEADER_LEN) {
            dbu_path(out, dir, names[i]);
            found++;
        }
    }
    REQUIRE(found == 1);
}

/* ---- WAL ---- */

#define WAL_PUTS 100

/* WAL_PUTS single-put records in one WAL; its path into wal. */
static void make_wal_db(const char *dir, char *wal)
{
    stoat_db *db = open_db(dir);

    put_keys(db, 0, WAL_PUTS);
    REQUIRE_OK(stoat_close(db));
    only_file(dir, ".wal", wal);
}

static void test_db_corruption_wal_middle_record(void)
{
    char wal[DBU_PATH_MAX];
    uint64_t offs[WAL_PUTS + 1];
    uint32_t lens[WAL_PUTS + 1];
    probe p;

    make_wal_db(test_tmpdir(), wal);
    REQUIRE(log_records(wal, offs, lens, WAL_PUTS + 1) == WAL_PUTS);
    dbu_flip(wal, offs[50] + LOG_REC_HEADER + lens[50] / 2);
    p = probe_db(test_tmpdir(), WAL_PUTS, 1);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
    CHECK(strstr(p.msg, strrchr(wal, '/') + 1) != NULL);
    p = probe_db(test_tmpdir(), WAL_PUTS, 0);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
    CHECK(strstr(p.msg, strrchr(wal, '/') + 1) != NULL);
}

/*
 * Damage to a record header in the middle of a WAL is corruption, at a
 * writable open too: the file is not cut back, so no later record is
 * dropped. Above all a damaged length that now points past end of file
 * must not pass for a record cut short by a crash (a torn tail).
 */
static void test_db_corruption_wal_checksum_and_length(void)
{
    char wal[DBU_PATH_MAX];
    uint64_t offs[WAL_PUTS + 1];
    uint32_t lens[WAL_PUTS + 1];
    uint64_t size;
    probe p;

    make_wal_db(test_tmpdir(), wal);
    REQUIRE(log_records(wal, offs, lens, WAL_PUTS + 1) == WAL_PUTS);
    size = dbu_file_size(wal);
    REQUIRE(offs[20] + LOG_REC_HEADER + (lens[20] ^ 0xff00u) > size);
    const uint64_t at[] = {
        3,              /* magic */
        offs[10] + 5,   /* payload checksum (covered by the header's check) */
        offs[20],       /* low byte of the length: still inside the file */
        offs[20] + 1,   /* a length byte: now past end of file */
        offs[20] + 3,   /* high byte of the length: past the record limit */
        offs[30] + 9,   /* the header's own check */
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        dbu_flip(wal, at[i]);
        p = probe_db(test_tmpdir(), WAL_PUTS, 0);
        CHECK_RC(p.open_rc, STOAT_ECORRUPT);
        CHECK(strstr(p.msg, strrchr(wal, '/') + 1) != NULL);
        CHECK(dbu_file_size(wal) == size);
        p = probe_db(test_tmpdir(), WAL_PUTS, 1);
        CHECK_RC(p.open_rc, STOAT_ECORRUPT);
        dbu_flip(wal, at[i]);
    }
    /* Repaired, every record is still there. */
    p = probe_db(test_tmpdir(), WAL_PUTS, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
}

/* A WAL cut inside its last record opens with every record before it. */
static void test_db_corruption_wal_torn_tail(void)
{
    char wal[DBU_PATH_MAX], k[16];
    uint64_t offs[WAL_PUTS + 1];
    uint32_t lens[WAL_PUTS + 1];
    void *v;
    size_t vlen;
    stoat_db *db;
    probe p;

    make_wal_db(test_tmpdir(), wal);
    REQUIRE(log_records(wal, offs, lens, WAL_PUTS + 1) == WAL_PUTS);
    dbu_truncate(wal, offs[WAL_PUTS - 1] + LOG_REC_HEADER + lens[WAL_PUTS - 1] / 2);
    p = probe_db(test_tmpdir(), WAL_PUTS - 1, 1);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    /* A read-only open leaves the torn tail where it is. */
    CHECK(dbu_file_size(wal) == offs[WAL_PUTS - 1] + LOG_REC_HEADER + lens[WAL_PUTS - 1] / 2);
    db = open_db(test_tmpdir());
    key_of(WAL_PUTS - 1, k);
    CHECK_RC(stoat_get(db, k, strlen(k), &v, &vlen), STOAT_ENOTFOUND);
    put_keys(db, WAL_PUTS - 1, WAL_PUTS + 50);
    REQUIRE_OK(stoat_close(db));
    p = probe_db(test_tmpdir(), WAL_PUTS + 50, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
}

/* A bad checksum in the very last record, or zeros after it, is a torn tail. */
static void test_db_corruption_wal_tail_variants(void)
{
    char wal[DBU_PATH_MAX], zeros[300] = {0};
    uint64_t offs[WAL_PUTS + 1];
    uint32_t lens[WAL_PUTS + 1];
    probe p;

    make_wal_db(test_tmpdir(), wal);
    REQUIRE(log_records(wal, offs, lens, WAL_PUTS + 1) == WAL_PUTS);
    dbu_append(wal, zeros, sizeof(zeros));
    p = probe_db(test_tmpdir(), WAL_PUTS, 1);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    dbu_truncate(wal, offs[WAL_PUTS - 1] + LOG_REC_HEADER + lens[WAL_PUTS - 1]);
    dbu_flip(wal, offs[WAL_PUTS - 1] + LOG_REC_HEADER + 3);
    p = probe_db(test_tmpdir(), WAL_PUTS - 1, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
}

/* ---- SST ---- */

typedef struct sst_layout {
    char path[DBU_PATH_MAX];
    uint64_t size;
    uint64_t filter_off, filter_len;    /* stored bytes + trailer */
    uint64_t props_off, props_len;
    uint64_t index_off, index_len;
    uint64_t data_end;                  /* data blocks are [0, data_end) */
} sst_layout;

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* CKEYS keys flattened into one table; its layout from its footer. */
static void make_sst_db(const char *dir, sst_layout *l)
{
    stoat_db *db = open_db(dir);
    unsigned char foot[SST_FOOTER];
    size_t len;
    char *data;

    put_keys(db, 0, CKEYS);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_close(db));
    only_file(dir, ".sst", l->path);
    data = dbu_read_file(l->path, &len);
    REQUIRE(len > SST_FOOTER);
    memcpy(foot, data + len - SST_FOOTER, SST_FOOTER);
    free(data);
    l->size = len;
    l->filter_off = get64(foot);
    l->filter_len = get64(foot + 8) ? get64(foot + 8) + SST_TRAILER : 0;
    l->props_off = get64(foot + 16);
    l->props_len = get64(foot + 24) + SST_TRAILER;
    l->index_off = get64(foot + 32);
    l->index_len = get64(foot + 40) + SST_TRAILER;
    l->data_end = l->filter_len ? l->filter_off : l->props_off;
    REQUIRE(l->index_off + l->index_len + SST_FOOTER == len);
    REQUIRE(l->data_end > 4096 && l->props_off < l->index_off);
}

/*
 * Flips the byte at off of the table in a fresh copy of the pristine
 * database, reads everything, and returns what happened.
 */
static probe probe_flip(const char *pristine, const sst_layout *l, uint64_t off)
{
    char work[DBU_PATH_MAX], sst[DBU_PATH_MAX];
    probe p;

    dbu_path(work, test_tmpdir(), "work");
    dbu_copy_dir(pristine, work);
    dbu_flip(dbu_path(sst, work, strrchr(l->path, '/') + 1), off);
    p = probe_db(work, CKEYS, 0);
    return p;
}

/* Sets up the pristine database in <tmp>/db. */
static const char *sst_setup(sst_layout *l)
{
    static char dir[DBU_PATH_MAX];

    dbu_subdir(dir, "db");
    make_sst_db(dir, l);
    return dir;
}

static void test_db_corruption_sst_data_blocks(void)
{
    sst_layout l;
    const char *db = sst_setup(&l);
    const uint64_t offs[] = {0, 1, 100, l.data_end / 3, l.data_end / 2, l.data_end - 1,
                             l.data_end - SST_TRAILER, l.data_end - 5};

    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        probe p = probe_flip(db, &l, offs[i]);
        char what[64];

        snprintf(what, sizeof(what), "data block byte %llu", (unsigned long long)offs[i]);
        CHECK_CAUGHT(p, what);
        if (p.open_rc == 0)
            CHECK(strstr(p.msg, strrchr(l.path, '/') + 1) != NULL);
    }
}

static void test_db_corruption_sst_index_filter_props(void)
{
    sst_layout l;
    const char *db = sst_setup(&l);
    const uint64_t offs[] = {l.index_off, l.index_off + l.index_len / 2,
                             l.index_off + l.index_len - 1, l.props_off,
                             l.props_off + l.props_len - SST_TRAILER, l.filter_off,
                             l.filter_off + l.filter_len / 2};

    REQUIRE(l.filter_len > 0);
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        probe p = probe_flip(db, &l, offs[i]);
        char what[64];

        snprintf(what, sizeof(what), "meta block byte %llu", (unsigned long long)offs[i]);
        CHECK_CAUGHT(p, what);
    }
}

/*
 * Every byte of the footer. The checksum is checked before the version,
 * so a damaged version field is corruption too, not "unsupported".
 */
static void test_db_corruption_sst_footer(void)
{
    sst_layout l;
    const char *db = sst_setup(&l);

    for (uint64_t i = 0; i < SST_FOOTER; i++) {
        uint64_t off = l.size - SST_FOOTER + i;
        probe p = probe_flip(db, &l, off);
        char what[64];

        snprintf(what, sizeof(what), "footer byte %llu", (unsigned long long)i);
        CHECK_CAUGHT(p, what);
    }
}

/* A flip anywhere in the table: always caught (every byte is checksummed). */
static void test_db_corruption_sst_sweep(void)
{
    sst_layout l;
    const char *db = sst_setup(&l);
    int trials = 0, unsafe = 0, missed = 0;

    for (uint64_t off = 7; off < l.size; off += l.size / 150 + 1, trials++) {
        probe p = probe_flip(db, &l, off);

        if (!probe_safe(&p)) {
            unsafe++;
            fprintf(stderr, "  byte %llu: open %d, %d corrupt, %d wrong: %s\n",
                    (unsigned long long)off, p.open_rc, p.corrupt, p.wrong, p.msg);
        } else if (!probe_caught(&p)) {
            missed++;
            fprintf(stderr, "  byte %llu: flip not detected\n", (unsigned long long)off);
        }
    }
    printf("sst sweep: %d flips, %d unsafe, %d undetected\n", trials, unsafe, missed);
    CHECK(unsafe == 0);
    CHECK(missed == 0);
}

static void test_db_corruption_sst_truncated(void)
{
    sst_layout l;
    const char *db = sst_setup(&l);
    const uint64_t lens[] = {0, 10, SST_FOOTER - 1, l.size / 2, l.size - SST_FOOTER, l.size - 1};
    char work[DBU_PATH_MAX], sst[DBU_PATH_MAX];

    dbu_path(work, test_tmpdir(), "work");
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        probe p;

        dbu_copy_dir(db, work);
        dbu_truncate(dbu_path(sst, work, strrchr(l.path, '/') + 1), lens[i]);
        p = probe_db(work, CKEYS, 0);
        CHECK_CAUGHT(p, "truncated table");
    }
}

/* ---- MANIFEST and the set of tables ---- */

/* Four flushes: a MANIFEST with several records, four tables. */
static void make_tables_db(const char *dir)
{
    stoat_db *db = open_db(dir);

    for (int i = 0; i < 4; i++) {
        put_keys(db, i * 300, (i + 1) * 300);
        REQUIRE_OK(stoat_flush(db));
    }
    REQUIRE_OK(stoat_close(db));
}

static void test_db_corruption_manifest_middle_record(void)
{
    char m[DBU_PATH_MAX];
    uint64_t offs[64];
    uint32_t lens[64];
    int n;
    probe p;

    make_tables_db(test_tmpdir());
    dbu_path(m, test_tmpdir(), "MANIFEST");
    n = log_records(m, offs, lens, 64);
    REQUIRE(n >= 3);
    dbu_flip(m, offs[1] + LOG_REC_HEADER + lens[1] / 2);
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
    CHECK(strstr(p.msg, "MANIFEST") != NULL);
    p = probe_db(test_tmpdir(), 1200, 1);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
    dbu_flip(m, offs[1] + LOG_REC_HEADER + lens[1] / 2);
    dbu_flip(m, 0);
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
}

/*
 * A damaged record header in the middle of the MANIFEST is corruption:
 * were a length pointing past end of file taken for a torn tail, the file
 * would be cut there and the tables added after it deleted.
 */
static void test_db_corruption_manifest_record_header(void)
{
    char m[DBU_PATH_MAX];
    uint64_t offs[64], size, sst_bytes;
    uint32_t lens[64];
    probe p;

    make_tables_db(test_tmpdir());
    dbu_path(m, test_tmpdir(), "MANIFEST");
    REQUIRE(log_records(m, offs, lens, 64) >= 3);
    size = dbu_file_size(m);
    REQUIRE(offs[1] + LOG_REC_HEADER + (lens[1] ^ 0xff00u) > size);
    sst_bytes = dbu_dir_bytes(test_tmpdir(), ".sst");
    const uint64_t at[] = {
        offs[1] + 1,    /* a length byte: now past end of file */
        offs[1],        /* low byte of the length */
        offs[1] + 10,   /* the header's own check */
        offs[1] + 4,    /* payload checksum (covered by the header's check) */
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        dbu_flip(m, at[i]);
        p = probe_db(test_tmpdir(), 1200, 0);
        CHECK_RC(p.open_rc, STOAT_ECORRUPT);
        CHECK(strstr(p.msg, "MANIFEST") != NULL);
        CHECK(dbu_file_size(m) == size);
        CHECK(dbu_dir_bytes(test_tmpdir(), ".sst") == sst_bytes);
        p = probe_db(test_tmpdir(), 1200, 1);
        CHECK_RC(p.open_rc, STOAT_ECORRUPT);
        dbu_flip(m, at[i]);
    }
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
}

/*
 * A partial record (a cut header, or an intact header whose payload was
 * cut short) or zeros after the last record: opens with everything.
 */
static void test_db_corruption_manifest_torn_tail(void)
{
    char m[DBU_PATH_MAX], zeros[64] = {0}, *data;
    uint64_t offs[64];
    uint32_t lens[64];
    size_t len;
    int n;
    probe p;

    make_tables_db(test_tmpdir());
    dbu_path(m, test_tmpdir(), "MANIFEST");
    REQUIRE((n = log_records(m, offs, lens, 64)) >= 2);
    data = dbu_read_file(m, &len);
    /* The last record once more, cut inside its payload, then inside its
     * header: what a crash during an append leaves. */
    dbu_append(m, data + offs[n - 1], LOG_REC_HEADER + lens[n - 1] / 2);
    p = probe_db(test_tmpdir(), 1200, 1);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    dbu_append(m, data + offs[n - 1], LOG_REC_HEADER - 1);
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    free(data);
    dbu_append(m, zeros, sizeof(zeros));
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    /* Still good after the tails were cut and more was written. */
    {
        stoat_db *db = open_db(test_tmpdir());

        put_keys(db, 1200, 1500);
        REQUIRE_OK(stoat_flush(db));
        REQUIRE_OK(stoat_close(db));
    }
    p = probe_db(test_tmpdir(), 1500, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
}

/*
 * A MANIFEST cut short before the end of its first record (the snapshot,
 * which creation and rewrites make durable before the file has its name)
 * cannot be a torn tail: it is damage, and no table may be deleted.
 */
static void test_db_corruption_manifest_cut_before_snapshot(void)
{
    char m[DBU_PATH_MAX], work[DBU_PATH_MAX], pristine[DBU_PATH_MAX];
    uint64_t offs[64], cut[5] = {0, 10, LOG_HEADER_LEN, LOG_HEADER_LEN + 4, 0};
    uint32_t lens[64];
    uint64_t sst_bytes;

    make_tables_db(dbu_subdir(pristine, "db"));
    REQUIRE(log_records(dbu_path(m, pristine, "MANIFEST"), offs, lens, 64) >= 1);
    cut[4] = offs[0] + LOG_REC_HEADER + lens[0] - 1;
    sst_bytes = dbu_dir_bytes(pristine, ".sst");
    dbu_path(work, test_tmpdir(), "work");
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        probe p;
        char what[64];

        dbu_copy_dir(pristine, work);
        dbu_truncate(dbu_path(m, work, "MANIFEST"), cut[i]);
        p = probe_db(work, 1200, 0);
        snprintf(what, sizeof(what), "MANIFEST cut to %llu bytes", (unsigned long long)cut[i]);
        CHECK_CAUGHT(p, what);
        CHECK(dbu_dir_bytes(work, ".sst") == sst_bytes);
    }
}

static void test_db_corruption_missing_table(void)
{
    static char names[DBU_MAX_FILES][64];
    char path[DBU_PATH_MAX], id[32];
    probe p;
    int n;

    make_tables_db(test_tmpdir());
    n = dbu_list(test_tmpdir(), ".sst", names);
    REQUIRE(n >= 1);
    REQUIRE(unlink(dbu_path(path, test_tmpdir(), names[n / 2])) == 0);
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
    snprintf(id, sizeof(id), "%.*s", (int)(strlen(names[n / 2]) - 4), names[n / 2]);
    CHECK(strstr(p.msg, id) != NULL);
    p = probe_db(test_tmpdir(), 1200, 1);
    CHECK_RC(p.open_rc, STOAT_ECORRUPT);
}

/*
 * Tables the manifest does not list are removed by a writable open only;
 * files that are not the database's are left alone.
 */
static void test_db_corruption_unknown_table_removed(void)
{
    char path[DBU_PATH_MAX], mine[DBU_PATH_MAX];
    probe p;

    make_tables_db(test_tmpdir());
    dbu_path(path, test_tmpdir(), "000999.sst");
    dbu_write_file(path, "not a table", 11);
    dbu_write_file(dbu_path(mine, test_tmpdir(), "notes.txt"), "mine", 4);
    p = probe_db(test_tmpdir(), 1200, 1);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    CHECK(dbu_exists(path));
    p = probe_db(test_tmpdir(), 1200, 0);
    CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    CHECK(!dbu_exists(path));
    CHECK(dbu_exists(mine));
    CHECK(dbu_exists(dbu_path(path, test_tmpdir(), "MANIFEST")));
}

/* A WAL cut inside its header (or empty) is a torn, empty WAL. */
static void test_db_corruption_wal_cut_in_header(void)
{
    static const uint64_t cut[] = {0, 5, LOG_HEADER_LEN};
    char wal[DBU_PATH_MAX], work[DBU_PATH_MAX], pristine[DBU_PATH_MAX];
    stoat_db *db;

    dbu_subdir(pristine, "db");
    db = open_db(pristine);
    put_keys(db, 0, 200);
    REQUIRE_OK(stoat_flush(db));
    put_keys(db, 200, 300);
    REQUIRE_OK(stoat_close(db));
    only_file(pristine, ".wal", wal);
    dbu_path(work, test_tmpdir(), "work");
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        char w[DBU_PATH_MAX];
        probe p;

        dbu_copy_dir(pristine, work);
        dbu_truncate(dbu_path(w, work, strrchr(wal, '/') + 1), cut[i]);
        p = probe_db(work, 200, 0);
        CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
        db = open_db(work);
        put_keys(db, 200, 300);
        REQUIRE_OK(stoat_close(db));
        p = probe_db(work, 300, 0);
        CHECK(p.open_rc == 0 && p.wrong == 0 && p.corrupt == 0);
    }
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_corruption_wal_middle_record);
    TEST_RUN(test_db_corruption_wal_checksum_and_length);
    TEST_RUN(test_db_corruption_wal_torn_tail);
    TEST_RUN(test_db_corruption_wal_tail_variants);
    TEST_RUN(test_db_corruption_wal_cut_in_header);
    TEST_RUN(test_db_corruption_sst_data_blocks);
    TEST_RUN(test_db_corruption_sst_index_filter_props);
    TEST_RUN(test_db_corruption_sst_footer);
    TEST_RUN(test_db_corruption_sst_sweep);
    TEST_RUN(test_db_corruption_sst_truncated);
    TEST_RUN(test_db_corruption_manifest_middle_record);
    TEST_RUN(test_db_corruption_manifest_record_header);
    TEST_RUN(test_db_corruption_manifest_torn_tail);
    TEST_RUN(test_db_corruption_manifest_cut_before_snapshot);
    TEST_RUN(test_db_corruption_missing_table);
    TEST_RUN(test_db_corruption_unknown_table_removed);
    return test_summary();
}
