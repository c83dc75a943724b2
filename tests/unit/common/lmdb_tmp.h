/*
 * lmdb_tmp.h: a throwaway LMDB environment in a new temporary directory, for
 * unit tests of modules that keep LMDB databases. Include after cmocka.h.
 */
#ifndef BULLETIN_TEST_LMDB_TMP_H
#define BULLETIN_TEST_LMDB_TMP_H

#include <lmdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Make the directory `dir` (an mkdtemp template such as
 * "/tmp/idx_test_XXXXXX", rewritten in place) and open an environment in it
 * with room for `maxdbs` named databases, a map of `map_size` bytes (0 =
 * LMDB's default) and MDB_NOSYNC (tests need no durability). Asserts. */
static inline MDB_env *lmdb_tmp_open(char *dir, unsigned maxdbs, size_t map_size)
{
    MDB_env *env;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, maxdbs), 0);
    if (map_size)
        assert_int_equal(mdb_env_set_mapsize(env, map_size), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOSYNC, 0644), 0);
    return env;
}

/* Close *env (set to NULL) and remove its directory (with what is in it). */
static inline void lmdb_tmp_close(MDB_env **env, const char *dir)
{
    mdb_env_close(*env);
    *env = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
