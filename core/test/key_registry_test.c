/*
 * key_registry_test.c - crypt/key_registry.c: create and reopen, a wrong
 * master key told apart from a damaged or altered file, rotation by age
 * and on demand, rekey (the old key refused after), a crash at every
 * step of a rekey (fault env) leaving the old or the new key working,
 * keys wiped on close, and no key bytes in any error message.
 */
#include <errno.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "crypt/key_registry.h"
#include "db_util.h"
#include "env/env.h"
#include "support/env_fault.h"
#include "test.h"

/* Printable keys, so that a key leaked into a message would show. */
static const uint8_t master1[32] = "master-ONE-0123456789abcdefghijk";
static const uint8_t master2[32] = "master-TWO-zyxwvutsrqponmlkjihgf";

#define T0 1700000000000ULL
#define DAY_MS (24ULL * 3600 * 1000)

static const char *kpath(void)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/KEYREGISTRY", test_tmpdir());
    return path;
}

static int leaks(const char *msg, const uint8_t *key)
{
    char hex[17];

    for (size_t i = 0; i + 8 <= 32; i++)
        if (memmem(msg, strlen(msg), key + i, 8) != NULL)
            return 1;
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    return strcasestr(msg, hex) != NULL;
}

/* The data keys' bytes seen so far, to search messages for them. */
static uint8_t seen[64][32];
static size_t n_seen;

static void remember(const aead_key *k)
{
    if (n_seen < 64)
        memcpy(seen[n_seen++], aead_key_bytes(k), 32);
}

/* Fails the test when the current message holds any key seen. */
static void check_no_key_in_msg(void)
{
    const char *msg = status_msg();

    CHECK(!leaks(msg, master1) && !leaks(msg, master2));
    for (size_t i = 0; i < n_seen; i++)
        CHECK(!leaks(msg, seen[i]));
}

static key_registry *open_kr(const uint8_t *master, uint64_t rotation_ms)
{
    key_registry *kr = NULL;

    REQUIRE_OK(key_registry_open(env_posix(), test_tmpdir(), master, rotation_ms, &kr));
    return kr;
}

static void test_key_registry_create_and_reopen(void)
{
    key_registry *kr = NULL;
    const aead_key *k = NULL, *k2 = NULL;
    uint8_t bytes[32];
    uint64_t id;

    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ENOTFOUND);
    CHECK(kr == NULL);
    REQUIRE_OK(key_registry_create(env_posix(), test_tmpdir(), master1, 0, T0, &kr));
    REQUIRE_OK(key_registry_current(kr, T0, &k, &id));
    CHECK(id == 1 && key_registry_count(kr) == 1);
    memcpy(bytes, aead_key_bytes(k), 32);
    remember(k);
    key_registry_close(kr);
    kr = NULL;
    CHECK_RC(key_registry_create(env_posix(), test_tmpdir(), master1, 0, T0, &kr), STOAT_EEXIST);
    CHECK(kr == NULL);

    kr = open_kr(master1, 0);
    REQUIRE_OK(key_registry_get(kr, 1, &k2));
    CHECK(memcmp(aead_key_bytes(k2), bytes, 32) == 0);
    CHECK_RC(key_registry_get(kr, 2, &k2), STOAT_ECORRUPT);
    check_no_key_in_msg();
    key_registry_close(kr);
}

static void fix_checksum(char *p, size_t len)
{
    put_fixed64(p + len - 8, checksum64(p, len - 8));
}

static void test_key_registry_wrong_key_vs_damage(void)
{
    key_registry *kr = NULL;
    const aead_key *k;
    uint64_t id;
    size_t len, bit;
    char *orig, *p;
    int not_corrupt = 0;

    REQUIRE_OK(key_registry_create(env_posix(), test_tmpdir(), master1, 0, T0, &kr));
    REQUIRE_OK(key_registry_rotate(kr, T0 + 1, &id));
    REQUIRE_OK(key_registry_get(kr, 1, &k));
    remember(k);
    REQUIRE_OK(key_registry_get(kr, 2, &k));
    remember(k);
    key_registry_close(kr);
    kr = NULL;
    orig = dbu_read_file(kpath(), &len);
    CHECK(len == 72 + 2 * 88 + 40);
    REQUIRE((p = malloc(len)) != NULL);

    /* A wrong key on an intact file: EINVAL, saying so. */
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master2, 0, &kr), STOAT_EINVAL);
    CHECK(strstr(status_msg(), "wrong master key") != NULL);
    check_no_key_in_msg();

    /* Any flipped bit, opened with the right key or a wrong one: corruption. */
    for (bit = 0; bit < 8 * len; bit++) {
        memcpy(p, orig, len);
        p[bit / 8] ^= (char)(1u << (bit % 8));
        dbu_write_file(kpath(), p, len);
        not_corrupt += key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr) !=
                       STOAT_ECORRUPT;
        check_no_key_in_msg();
        not_corrupt += key_registry_open(env_posix(), test_tmpdir(), master2, 0, &kr) !=
                       STOAT_ECORRUPT;
    }
    CHECK(not_corrupt == 0);

    /* Truncated and empty files, a foreign file. */
    dbu_write_file(kpath(), orig, len - 1);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);
    dbu_write_file(kpath(), orig, 0);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);
    dbu_write_file(kpath(), "MANIFEST but not a key registry", 31);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "not a key registry") != NULL);

    /* Altered by someone who recomputes the checksum: a sealed key
     * changed, the newest key dropped (count and length agree), the
     * order of two entries swapped. The master key is right: corruption. */
    memcpy(p, orig, len);
    p[72 + 88 + 40] ^= 1;
    fix_checksum(p, len);
    dbu_write_file(kpath(), p, len);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "altered") != NULL);
    memcpy(p, orig, 72 + 88);
    put_fixed32(p + 64, 1);
    memcpy(p + 72 + 88, orig + len - 40, 40);
    fix_checksum(p, 72 + 88 + 40);
    dbu_write_file(kpath(), p, 72 + 88 + 40);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);
    memcpy(p, orig, len);
    memcpy(p + 72, orig + 72 + 88, 88);
    memcpy(p + 72 + 88, orig + 72, 88);
    fix_checksum(p, len);
    dbu_write_file(kpath(), p, len);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ECORRUPT);

    /* A later format version: ENOTSUP, naming it. */
    memcpy(p, orig, len);
    put_fixed32(p + 8, 2);
    fix_checksum(p, len);
    dbu_write_file(kpath(), p, len);
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_ENOTSUP);
    CHECK(strstr(status_msg(), "version 2") != NULL);

    /* The original still opens with its key. */
    dbu_write_file(kpath(), orig, len);
    kr = open_kr(master1, 0);
    CHECK(key_registry_count(kr) == 2);
    key_registry_close(kr);
    free(p);
    free(orig);
}

static void test_key_registry_rotation_by_age_and_on_demand(void)
{
    key_registry *kr = NULL;
    const aead_key *k, *got;
    uint8_t bytes[5][32];
    uint64_t id, created;

    REQUIRE_OK(key_registry_create(env_posix(), test_tmpdir(), master1, 1000, T0, &kr));
    REQUIRE_OK(key_registry_current(kr, T0 + 999, &k, &id));
    CHECK(id == 1);
    memcpy(bytes[1], aead_key_bytes(k), 32);
    REQUIRE_OK(key_registry_current(kr, T0 + 1000, &k, &id));
    CHECK(id == 2);
    memcpy(bytes[2], aead_key_bytes(k), 32);
    REQUIRE_OK(key_registry_current(kr, T0 + 1999, &k, &id));
    CHECK(id == 2);
    /* A clock that went back rotates nothing. */
    REQUIRE_OK(key_registry_current(kr, T0, &k, &id));
    CHECK(id == 2);
    REQUIRE_OK(key_registry_current(kr, T0 + 2000, &k, &id));
    CHECK(id == 3);
    memcpy(bytes[3], aead_key_bytes(k), 32);
    REQUIRE_OK(key_registry_rotate(kr, T0 + 2001, &id));
    CHECK(id == 4);
    REQUIRE_OK(key_registry_current(kr, T0 + 2002, &k, &id));
    CHECK(id == 4);
    memcpy(bytes[4], aead_key_bytes(k), 32);
    CHECK(memcmp(bytes[1], bytes[2], 32) != 0 && memcmp(bytes[2], bytes[3], 32) != 0 &&
          memcmp(bytes[3], bytes[4], 32) != 0);
    key_registry_close(kr);

    /* Reopened: every key, the newest id and its time survive. */
    kr = open_kr(master1, 1000);
    CHECK(key_registry_count(kr) == 4);
    key_registry_newest(kr, &id, &created);
    CHECK(id == 4 && created == T0 + 2001);
    for (uint64_t i = 1; i <= 4; i++) {
        REQUIRE_OK(key_registry_get(kr, i, &got));
        CHECK(memcmp(aead_key_bytes(got), bytes[i], 32) == 0);
    }
    key_registry_close(kr);

    /* The default period is 10 days. */
    kr = open_kr(master1, 0);
    REQUIRE_OK(key_registry_current(kr, T0 + 2001 + 10 * DAY_MS - 1, &k, &id));
    CHECK(id == 4);
    REQUIRE_OK(key_registry_current(kr, T0 + 2001 + 10 * DAY_MS, &k, &id));
    CHECK(id == 5);
    key_registry_close(kr);
}

static void test_key_registry_rekey(void)
{
    key_registry *kr = NULL;
    const aead_key *k;
    uint8_t bytes[4][32];
    uint64_t id;
    size_t len1, len2;
    char *before, *after;

    REQUIRE_OK(key_registry_create(env_posix(), test_tmpdir(), master1, 0, T0, &kr));
    REQUIRE_OK(key_registry_rotate(kr, T0 + 1, &id));
    REQUIRE_OK(key_registry_rotate(kr, T0 + 2, &id));
    for (uint64_t i = 1; i <= 3; i++) {
        REQUIRE_OK(key_registry_get(kr, i, &k));
        memcpy(bytes[i], aead_key_bytes(k), 32);
        remember(k);
    }
    before = dbu_read_file(kpath(), &len1);
    REQUIRE_OK(key_registry_rekey(kr, master2));
    /* Still usable after: a rotation is wrapped by the new key. */
    REQUIRE_OK(key_registry_rotate(kr, T0 + 3, &id));
    CHECK(id == 4);
    key_registry_close(kr);
    after = dbu_read_file(kpath(), &len2);
    CHECK(len2 == len1 + 88);
    CHECK(memcmp(before + 16, after + 16, 16) != 0);   /* a fresh salt */

    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master1, 0, &kr), STOAT_EINVAL);
    check_no_key_in_msg();
    kr = open_kr(master2, 0);
    CHECK(key_registry_count(kr) == 4);
    for (uint64_t i = 1; i <= 3; i++) {
        REQUIRE_OK(key_registry_get(kr, i, &k));
        CHECK(memcmp(aead_key_bytes(k), bytes[i], 32) == 0);
    }
    key_registry_close(kr);
    free(before);
    free(after);
}

/* Opens with m; 1 if it works, 0 if refused as a wrong key; anything
 * else fails the test. Checks the keys' bytes against want (n keys). */
static int opens_with(env *e, const char *dir, const uint8_t *m, uint8_t want[][32], size_t n)
{
    key_registry *kr = NULL;
    const aead_key *k;
    int rc = key_registry_open(e, dir, m, 0, &kr);

    check_no_key_in_msg();
    if (rc == STOAT_EINVAL)
        return 0;
    CHECK_RC(rc, 0);
    if (rc != 0)
        return -1;
    CHECK(key_registry_count(kr) == n);
    for (size_t i = 0; i < n; i++) {
        CHECK(key_registry_get(kr, i + 1, &k) == 0 &&
              memcmp(aead_key_bytes(k), want[i], 32) == 0);
    }
    key_registry_close(kr);
    return 1;
}

/*
 * A power loss at every step of a rekey: the n-th append or sync fails,
 * then the unsynced state is dropped (env_fault_drop_unsynced) or
 * reordered (env_fault_crash_copy, several seeds). Exactly one of the old
 * and the new master key opens the registry, with every data key intact.
 */
static void test_key_registry_crash_during_rekey(void)
{
    char dir[4200], copy[4200], kr_path[4300], desc[256];
    uint8_t bytes[2][32];
    int olds = 0, news = 0, step3_olds = 0, step3_news = 0;

    /* Registry in dir, crash states in copy: crash_copy copies every file of dir. */
    snprintf(dir, sizeof(dir), "%s/db", test_tmpdir());
    snprintf(copy, sizeof(copy), "%s/copy", test_tmpdir());
    snprintf(kr_path, sizeof(kr_path), "%s/KEYREGISTRY", dir);
    REQUIRE_OK(env_mkdir(env_posix(), dir));
    for (int step = 0; step <= 4; step++) {
        for (int seed = 0; seed < 12; seed++) {
            env *e = env_fault_new(env_posix());
            key_registry *kr = NULL;
            const aead_key *k;
            uint64_t id;
            long appends, syncs;
            int rc, o, nw;

            REQUIRE(e != NULL);
            env_remove(env_posix(), kr_path);
            REQUIRE_OK(key_registry_create(e, dir, master1, 0, T0, &kr));
            REQUIRE_OK(key_registry_rotate(kr, T0 + 1, &id));
            for (uint64_t i = 1; i <= 2; i++) {
                REQUIRE_OK(key_registry_get(kr, i, &k));
                memcpy(bytes[i - 1], aead_key_bytes(k), 32);
            }
            /* step 0: no fault (power lost once rekey returned); 1: the
             * append fails (EIO); 2: the file's sync fails; 3: the
             * directory's sync fails (after the rename); 4: the disk is
             * full at the append. */
            appends = env_fault_appends(e);
            syncs = env_fault_syncs(e);
            if (step == 1 || step == 4)
                env_fault_fail_append(e, 1, step == 1 ? EIO : ENOSPC);
            else if (step == 2)
                env_fault_fail_sync(e, 1);
            else if (step == 3)
                env_fault_fail_sync(e, 2);
            rc = key_registry_rekey(kr, master2);
            CHECK((rc == 0) == (step == 0));
            CHECK(rc != STOAT_ENOSPC || step == 4);
            CHECK(env_fault_appends(e) > appends);
            CHECK(env_fault_syncs(e) > syncs || step == 1 || step == 4);
            if (rc != 0) {
                /* Sticky: no more writes until reopened. */
                CHECK(key_registry_rotate(kr, T0 + 2, &id) != 0);
                check_no_key_in_msg();
            }
            key_registry_close(kr);
            if (seed == 0) {
                env_fault_crash(e);
                REQUIRE_OK(env_fault_drop_unsynced(e));
                o = opens_with(e, dir, master1, bytes, 2);
                nw = opens_with(e, dir, master2, bytes, 2);
            } else {
                char cpath[4300];

                REQUIRE_OK(env_mkdir(env_posix(), copy));
                snprintf(cpath, sizeof(cpath), "%s/KEYREGISTRY", copy);
                env_remove(env_posix(), cpath);
                snprintf(cpath, sizeof(cpath), "%s/KEYREGISTRY.tmp", copy);
                env_remove(env_posix(), cpath);
                REQUIRE_OK(env_fault_crash_copy(e, dir, copy, (uint64_t)seed,
                                                ENV_FAULT_PREFIX | ENV_FAULT_TORN |
                                                ENV_FAULT_ZEROS | ENV_FAULT_NAMES, desc,
                                                sizeof(desc)));
                o = opens_with(env_posix(), copy, master1, bytes, 2);
                nw = opens_with(env_posix(), copy, master2, bytes, 2);
            }
            if (o + nw != 1)
                test_fail(__FILE__, __LINE__, "step %d seed %d: old key %d, new key %d (%s)",
                          step, seed, o, nw, seed ? desc : "drop_unsynced");
            if (step == 0)
                CHECK(nw == 1);     /* a rekey that returned 0 is durable */
            else if (step != 3)
                CHECK(o == 1);      /* the rename never happened */
            olds += o == 1;
            news += nw == 1;
            step3_olds += step == 3 && o == 1;
            step3_news += step == 3 && nw == 1;
            env_fault_free(e);
        }
    }
    /* Both outcomes were seen, so the test can tell them apart. */
    CHECK(olds > 0 && news > 0);
    /* A lost rename after the failed directory sync gives the old key. */
    CHECK(step3_olds > 0);
    if (getenv("STOAT_TEST_VERBOSE"))
        printf("rekey crash states: old %d new %d (directory sync failed: old %d new %d)\n",
               olds, news, step3_olds, step3_news);
}

static int wipes, wipes_nonzero;

static void count_wipe(const uint8_t *bytes, size_t len)
{
    wipes++;
    for (size_t i = 0; i < len; i++)
        wipes_nonzero += bytes[i] != 0;
}

/* Closing wipes every data key and both subkeys; a refused open wipes
 * what it derived. */
static void test_key_registry_keys_wiped_on_close(void)
{
    key_registry *kr = NULL;
    uint64_t id;

    REQUIRE_OK(key_registry_create(env_posix(), test_tmpdir(), master1, 0, T0, &kr));
    REQUIRE_OK(key_registry_rotate(kr, T0 + 1, &id));
    REQUIRE_OK(key_registry_rotate(kr, T0 + 2, &id));
    aead_key_free_hook = count_wipe;
    wipes = wipes_nonzero = 0;
    key_registry_close(kr);
    CHECK(wipes == 3 + 2 && wipes_nonzero == 0);
    wipes = wipes_nonzero = 0;
    CHECK_RC(key_registry_open(env_posix(), test_tmpdir(), master2, 0, &kr), STOAT_EINVAL);
    CHECK(wipes == 2 && wipes_nonzero == 0);
    aead_key_free_hook = NULL;
}

int main(int argc, char **argv)
{
    TEST_RUN(test_key_registry_create_and_reopen);
    TEST_RUN(test_key_registry_wrong_key_vs_damage);
    TEST_RUN(test_key_registry_rotation_by_age_and_on_demand);
    TEST_RUN(test_key_registry_rekey);
    TEST_RUN(test_key_registry_crash_during_rekey);
    TEST_RUN(test_key_registry_keys_wiped_on_close);
    return test_summary();
}
