/*
 * lmdb_map: growing an LMDB map after MDB_MAP_FULL, the same way in every
 * service that writes an environment (the store's, a worker's replica).
 *
 *   for (attempt...) {
 *       rc = write_txn(...);                 // aborted on MDB_MAP_FULL
 *       if (rc != MDB_MAP_FULL || lmdb_map_grow(env, "svc.map_grow", NULL))
 *           break;                           // else replay the whole txn
 *   }
 *
 * Header only (static inline): core itself does not link LMDB; the callers do.
 */
#ifndef BULLETIN_LMDB_MAP_H
#define BULLETIN_LMDB_MAP_H

#include <lmdb.h>
#include <stddef.h>

#include "log.h"

/* Double env's map size, from the size the environment really has (LMDB
 * opens an environment at least as big as its data, whatever was asked).
 * No write transaction may be open in this process, and no read
 * transaction of this process may be active. Logs `event` with from= and to=
 * (info), or error= (error). Returns 0 and the new size in *size (if not
 * NULL), or the LMDB error (MDB_MAP_FULL when the size cannot double). */
static inline int lmdb_map_grow(MDB_env *env, const char *event, size_t *size)
{
    MDB_envinfo ei;
    int rc = mdb_env_info(env, &ei);
    if (rc == 0) {
        size_t to = ei.me_mapsize * 2;
        rc = to < ei.me_mapsize ? MDB_MAP_FULL : mdb_env_set_mapsize(env, to);
        if (rc == 0) {
            log_info(event, "from=%zu to=%zu", ei.me_mapsize, to);
            if (size)
                *size = to;
            return 0;
        }
    }
    log_error(event, "error=\"%s\"", mdb_strerror(rc));
    return rc;
}

#endif
