/*
 * db_env.h - opening a database over a chosen env.
 *
 * stoat_open() uses env_posix(); tests pass a fault-injecting env here to
 * fail writes and syncs and to simulate power loss. The env must outlive
 * the handle.
 */
#ifndef STOAT_DB_ENV_H
#define STOAT_DB_ENV_H

#include "env/env.h"
#include "stoat.h"

int db_open_env(const char *dir, const stoat_options *opts, env *e, stoat_db **out);

#endif
