/*
 * lmdb_equal.h: a test helper shared by unit tests of modules that keep
 * LMDB databases (query's replica, search's index). Include after cmocka.h.
 */
#ifndef BULLETIN_TEST_LMDB_EQUAL_H
#define BULLETIN_TEST_LMDB_EQUAL_H

#include <lmdb.h>
#include <stddef.h>

/* Assert that database da in txn ta and database db in txn tb hold the same
 * keys with the same values, byte for byte and in the same order (duplicates
 * included); returns the number of entries compared. */
static inline size_t lmdb_assert_equal(MDB_txn *ta, MDB_dbi da, MDB_txn *tb, MDB_dbi db)
{
    MDB_cursor *ca, *cb;
    assert_int_equal(mdb_cursor_open(ta, da, &ca), 0);
    assert_int_equal(mdb_cursor_open(tb, db, &cb), 0);
    MDB_val ka, va, kb, vb;
    size_t n = 0;
    int rca = mdb_cursor_get(ca, &ka, &va, MDB_FIRST);
    int rcb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
    while (rca == 0 && rcb == 0) {
        assert_int_equal(ka.mv_size, kb.mv_size);
        assert_memory_equal(ka.mv_data, kb.mv_data, ka.mv_size);
        assert_int_equal(va.mv_size, vb.mv_size);
        assert_memory_equal(va.mv_data, vb.mv_data, va.mv_size);
        n++;
        rca = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        rcb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
    }
    assert_int_equal(rca, MDB_NOTFOUND);
    assert_int_equal(rcb, MDB_NOTFOUND);
    mdb_cursor_close(ca);
    mdb_cursor_close(cb);
    return n;
}

#endif
