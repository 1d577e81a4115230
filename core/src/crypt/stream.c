/*
 * stream.c - sealed streams (stoat.h, "Sealed streams"): the key of a
 * stream derived from the master key and the stream's salt, and the seal
 * and open of its pieces. Used by backups of encrypted databases
 * (lua/stoat/backup.lua; format in core/FORMAT.md, "Backup stream").
 */
#include <stdlib.h>

#include "base/status.h"
#include "crypt/aead.h"
#include "stoat.h"

_Static_assert(STOAT_STREAM_SALT_LEN == AEAD_SALT_LEN, "salt length");
_Static_assert(STOAT_STREAM_OVERHEAD == AEAD_OVERHEAD, "overhead");
_Static_assert(STOAT_KEY_LEN == AEAD_KEY_LEN, "key length");

static const char stream_label[AEAD_LABEL_LEN] = "stoat stream v1 ";

struct stoat_stream_key {
    aead_key *key;
};

int stoat_stream_key_new(const uint8_t *master, uint8_t *salt, int fresh, stoat_stream_key **out)
{
    uint8_t sub[AEAD_KEY_LEN];
    stoat_stream_key *k;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_stream_key_new: out is NULL");
    *out = NULL;
    if (master == NULL || salt == NULL)
        return status_err(STOAT_EINVAL, "stoat_stream_key_new: NULL key or salt");
    if ((rc = aead_init()) != 0)
        return rc;
    if (fresh)
        aead_random(salt, AEAD_SALT_LEN);
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return status_err(STOAT_ENOMEM, "stream key: out of memory");
    aead_derive(master, salt, stream_label, sub);
    rc = aead_key_new(sub, &k->key);
    aead_wipe(sub, sizeof(sub));
    if (rc != 0) {
        free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void stoat_stream_key_free(stoat_stream_key *k)
{
    if (k == NULL)
        return;
    aead_key_free(k->key);
    free(k);
}

int stoat_stream_seal(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out)
{
    if (k == NULL || (in == NULL && len > 0) || out == NULL || (ad == NULL && ad_len > 0))
        return status_err(STOAT_EINVAL, "stoat_stream_seal: NULL argument");
    return aead_seal(k->key, ad, ad_len, in, len, out, aead_sealed_len(len));
}

int stoat_stream_open(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out)
{
    if (k == NULL || in == NULL || (out == NULL && len > AEAD_OVERHEAD) ||
        (ad == NULL && ad_len > 0))
        return status_err(STOAT_EINVAL, "stoat_stream_open: NULL argument");
    return aead_open(k->key, ad, ad_len, in, len, out, len >= AEAD_OVERHEAD ? len - AEAD_OVERHEAD : 0,
                     "stream piece");
}
