/*
 * options.h - checking a stoat_options before open (the defaults are
 * stoat_options_init, in stoat.h).
 */
#ifndef STOAT_DB_OPTIONS_H
#define STOAT_DB_OPTIONS_H

#include "db/db.h"

/* 0, or STOAT_EINVAL naming the first option out of its range. */
int db_options_check(const stoat_options *o);

#endif
