/*
 * xapian_bench.cc: the Xapian baseline (see xapian_bench.h). Every call
 * catches Xapian's exceptions and turns them into -1 / NULL so that the C
 * side never sees one.
 */
#include "xapian_bench.h"

#include <xapian.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

struct xb {
    std::string dir;
    bool cjk = false;
    std::unique_ptr<Xapian::WritableDatabase> wdb;
    std::unique_ptr<Xapian::Database> db;
    Xapian::TermGenerator tg;
    Xapian::QueryParser qp;
    Xapian::Stem stem{"english"};
};

extern "C" xb *xb_new(const char *dir, int cjk) {
    try {
        auto x = std::make_unique<xb>();
        x->dir = dir;
        x->cjk = cjk != 0;
        x->wdb = std::make_unique<Xapian::WritableDatabase>(dir, Xapian::DB_CREATE);
        x->tg.set_stemmer(x->stem);
        x->tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
        if (x->cjk)
            x->tg.set_flags(Xapian::TermGenerator::FLAG_CJK_NGRAM);
        return x.release();
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian: %s\n", e.get_description().c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "xapian: %s\n", e.what());
    }
    return nullptr;
}

extern "C" int xb_add(xb *x, const char *title, const char *body) {
    try {
        Xapian::Document doc;
        x->tg.set_document(doc);
        x->tg.index_text(title, 2);
        x->tg.increase_termpos(100); /* no phrase across title and body */
        x->tg.index_text(body);
        x->wdb->add_document(doc);
        return 0;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian add: %s\n", e.get_description().c_str());
    }
    return -1;
}

extern "C" int xb_commit(xb *x) {
    try {
        x->wdb->commit();
        return 0;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian commit: %s\n", e.get_description().c_str());
    }
    return -1;
}

extern "C" int xb_finish(xb *x) {
    try {
        x->wdb->close();
        x->wdb.reset();
        return 0;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian close: %s\n", e.get_description().c_str());
    }
    return -1;
}

extern "C" xb *xb_open(const char *dir, int cjk) {
    try {
        auto x = std::make_unique<xb>();
        x->dir = dir;
        x->cjk = cjk != 0;
        x->db = std::make_unique<Xapian::Database>(x->dir);
        x->qp.set_database(*x->db);
        x->qp.set_stemmer(x->stem);
        x->qp.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
        x->qp.set_default_op(Xapian::Query::OP_AND);
        return x.release();
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian open: %s\n", e.get_description().c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "xapian open: %s\n", e.what());
    }
    return nullptr;
}

extern "C" int xb_search(xb *x, const char *query, unsigned limit, unsigned *nhits,
                         uint64_t *estimate, uint64_t *ids) {
    try {
        unsigned flags = Xapian::QueryParser::FLAG_DEFAULT;
        if (x->cjk)
            flags |= Xapian::QueryParser::FLAG_CJK_NGRAM;
        Xapian::Query q = x->qp.parse_query(query, flags);
        Xapian::Enquire enq(*x->db);
        enq.set_query(q);
        enq.set_weighting_scheme(Xapian::BM25Weight(1.2, 0, 1, 0.75, 0.5));
        Xapian::MSet ms = enq.get_mset(0, limit);
        *nhits = ms.size();
        if (ids) {
            unsigned i = 0;
            for (Xapian::MSetIterator it = ms.begin(); it != ms.end() && i < limit; ++it)
                ids[i++] = *it;
        }
        *estimate = ms.get_matches_estimated();
        return 0;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "xapian query '%s': %s\n", query, e.get_description().c_str());
    }
    return -1;
}

extern "C" uint64_t xb_size(const char *dir) {
    uint64_t n = 0;
    std::error_code ec;
    for (auto &f : std::filesystem::recursive_directory_iterator(dir, ec))
        if (f.is_regular_file(ec))
            n += f.file_size(ec);
    return n;
}

extern "C" void xb_destroy(xb **self) {
    if (!self || !*self)
        return;
    try {
        delete *self;
    } catch (...) {
    }
    *self = nullptr;
}
