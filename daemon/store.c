/* The job queue's store: one SQLite database in WAL mode. A job's argv,
 * environment (in its own table, stored once for jobs that share it)
 * and dependencies are msgpack arrays in blobs. With
 * synchronous=NORMAL a commit survives the daemon's death (SIGKILL
 * included) at once, and the machine's after the next checkpoint. The
 * daemon is the database's only user (its lock file says so), so SQLite
 * may keep its locks and WAL index to itself (locking_mode=EXCLUSIVE):
 * no lock calls per transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"
#include "store.h"

#define SCHEMA_VERSION 3

struct qdb {
  sqlite3* db;
  sqlite3_stmt* insert;
  sqlite3_stmt* update;
  sqlite3_stmt* insert_env;
  int64_t last_id; /* ids are never reused, removed jobs' included */
  /* Jobs from one shell share one environment: it is stored once, and
   * the last one is remembered to find it again without a query. */
  char* last_env;
  size_t last_env_len;
  int64_t last_env_id;
  char error[512];
};

static const char* const state_names[QS_COUNT] = {
    "queued", "running", "done", "failed", "cancelled", "interrupted"};

const char* qstate_name(int state) {
  return state >= 0 && state < QS_COUNT ? state_names[state] : "unknown";
}

bool qstate_final(int state) {
  return state != QS_QUEUED && state != QS_RUNNING;
}

static void free_strv(char** v) {
  size_t i;
  if (v == NULL)
    return;
  for (i = 0; v[i] != NULL; i++)
    free(v[i]);
  free(v);
}

void qjob_free(qjob* j) {
  if (j == NULL)
    return;
  free(j->name);
  free(j->group);
  free_strv(j->argv);
  free(j->cwd);
  free_strv(j->env);
  free(j->lib);
  free(j->fn);
  free(j->arg_json);
  free(j->after);
  free(j->boot_id);
  free(j->result);
  free(j->error);
  free(j->output_error);
  free(j);
}

void qjob_command(const qjob* j, vbuf* out) {
  size_t i;
  if (j->kind != 0) {
    vbuf_str(out, j->fn);
    vbuf_add(out, " ", 1);
    vbuf_str(out, j->arg_json);
    return;
  }
  for (i = 0; j->argv[i] != NULL; i++) {
    if (i)
      vbuf_add(out, " ", 1);
    vow_cli_quote(out, j->argv[i]);
  }
}

int qjob_status(const qjob* j) {
  switch (j->state) {
    case QS_DONE:
      return 0;
    case QS_FAILED:
      if (j->error != NULL && strncmp(j->error, "timed out", 9) == 0)
        return 124;
      if (j->term_signal > 0)
        return 128 + (int)j->term_signal;
      return j->exit_status > 0 && j->exit_status < 256 ? (int)j->exit_status
                                                        : 1;
    default:
      return 125;
  }
}

static int fail(qdb* db, const char* what) {
  snprintf(db->error, sizeof(db->error), "%s: %s", what,
           sqlite3_errmsg(db->db));
  return -1;
}

const char* qdb_error(const qdb* db) {
  return db->error;
}

static const char* const schema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id INTEGER PRIMARY KEY, name TEXT, kind INTEGER NOT NULL,"
    " argv BLOB, cwd TEXT, env_id INTEGER, lib TEXT, fn TEXT, arg TEXT,"
    " priority INTEGER NOT NULL, timeout REAL NOT NULL,"
    " retries INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " after BLOB, state INTEGER NOT NULL, pgid INTEGER, start_ticks INTEGER,"
    " boot_id TEXT, exit_status INTEGER, term_signal INTEGER,"
    " result TEXT, error TEXT, submitted REAL, started REAL, ended REAL,"
    " grp TEXT, output_error TEXT);"
    "CREATE TABLE IF NOT EXISTS envs(id INTEGER PRIMARY KEY, env BLOB);"
    "CREATE TABLE IF NOT EXISTS groups(name TEXT PRIMARY KEY,"
    " slots INTEGER NOT NULL, paused INTEGER NOT NULL);";

/* Version 1 had no groups: its jobs are all in the default one. Version
 * 2 did not say when a job's output could not all be kept. */
static const char* const upgrade_from_1 =
    "ALTER TABLE jobs ADD COLUMN grp TEXT;"
    "UPDATE meta SET value = 2 WHERE key = 'schema';";
static const char* const upgrade_from_2 =
    "ALTER TABLE jobs ADD COLUMN output_error TEXT;"
    "UPDATE meta SET value = 3 WHERE key = 'schema';";

static int64_t query_int(qdb* db, const char* sql) {
  sqlite3_stmt* st;
  int64_t v = 0;
  if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
    return 0;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

qdb* qdb_open(const char* path, char* err, size_t errlen) {
  qdb* db = calloc(1, sizeof(*db));
  sqlite3_stmt* st = NULL;
  int version = 0;
  if (db == NULL) {
    snprintf(err, errlen, "no memory");
    return NULL;
  }
  if (sqlite3_open_v2(path, &db->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                      NULL) != SQLITE_OK)
    goto bad;
  sqlite3_busy_timeout(db->db, 5000);
  if (sqlite3_exec(db->db,
                   "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
                   " PRAGMA synchronous=NORMAL;",
                   NULL, NULL, NULL) != SQLITE_OK)
    goto bad;
  if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key = 'schema'",
                         -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  if (version == 1 &&
      sqlite3_exec(db->db, upgrade_from_1, NULL, NULL, NULL) != SQLITE_OK)
    goto bad;
  if (version == 1)
    version = 2;
  if (version == 2 &&
      sqlite3_exec(db->db, upgrade_from_2, NULL, NULL, NULL) != SQLITE_OK)
    goto bad;
  if (version == 2)
    version = 3;
  if (sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK)
    goto bad;
  if (version == 0) {
    if (sqlite3_exec(db->db,
                     "INSERT INTO meta VALUES('schema', 3);"
                     "INSERT INTO meta VALUES('paused', 0);"
                     "INSERT INTO meta VALUES('last_id', 0);",
                     NULL, NULL, NULL) != SQLITE_OK)
      goto bad;
  } else if (version != SCHEMA_VERSION) {
    snprintf(err, errlen, "%s has schema version %d; this vow reads version %d",
             path, version, SCHEMA_VERSION);
    qdb_close(db);
    return NULL;
  }
  db->last_id = query_int(
      db,
      "SELECT MAX(COALESCE((SELECT value FROM meta WHERE key='last_id'), 0),"
      " COALESCE((SELECT MAX(id) FROM jobs), 0))");
  if (sqlite3_prepare_v2(
          db->db,
          "INSERT INTO jobs(name, kind, argv, cwd, env_id, lib, fn, arg,"
          " priority, timeout, retries, attempts, after, state, submitted,"
          " grp, id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
          -1, &db->insert, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(
          db->db,
          "UPDATE jobs SET state=?, attempts=?, pgid=?, start_ticks=?,"
          " boot_id=?, exit_status=?, term_signal=?, result=?, error=?,"
          " started=?, ended=?, output_error=? WHERE id=?",
          -1, &db->update, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db->db, "INSERT INTO envs(env) VALUES(?)", -1,
                         &db->insert_env, NULL) != SQLITE_OK)
    goto bad;
  return db;
bad:
  snprintf(err, errlen, "cannot open the job database %s: %s", path,
           db->db ? sqlite3_errmsg(db->db) : "out of memory");
  qdb_close(db);
  return NULL;
}

void qdb_close(qdb* db) {
  if (db == NULL)
    return;
  sqlite3_finalize(db->insert);
  sqlite3_finalize(db->update);
  sqlite3_finalize(db->insert_env);
  free(db->last_env);
  sqlite3_close(db->db);
  free(db);
}

bool qdb_in_txn(qdb* db) {
  return !sqlite3_get_autocommit(db->db);
}

static int ensure_txn(qdb* db) {
  return qdb_in_txn(db) ? 0 : qdb_begin(db);
}

int qdb_flush(qdb* db) {
  if (!qdb_in_txn(db))
    return 0;
  if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
    return 0;
  fail(db, "cannot write the job database");
  qdb_rollback(db);
  /* The remembered environment may be among what was rolled back. */
  free(db->last_env);
  db->last_env = NULL;
  db->last_env_len = 0;
  return -1;
}

int qdb_begin(qdb* db) {
  if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return fail(db, "cannot begin a transaction");
  return 0;
}

void qdb_rollback(qdb* db) {
  if (!sqlite3_get_autocommit(db->db))
    sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- blobs ------------------------------------------------------------ */

static void pack_strv(msgpack_sbuffer* sb, char** v) {
  msgpack_packer pk;
  size_t n = 0, i;
  while (v[n] != NULL)
    n++;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++) {
    size_t len = strlen(v[i]);
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, v[i], len);
  }
}

static void bind_strv(sqlite3_stmt* st, int col, char** v) {
  msgpack_sbuffer sb;
  if (v == NULL) {
    sqlite3_bind_null(st, col);
    return;
  }
  pack_strv(&sb, v);
  sqlite3_bind_blob(st, col, sb.data, (int)sb.size, SQLITE_TRANSIENT);
  msgpack_sbuffer_destroy(&sb);
}

/* The id of env in the envs table, stored there if it is not the last
 * one seen; 0 for none, -1 on error. */
static int64_t env_id(qdb* db, char** env) {
  msgpack_sbuffer sb;
  int rc;
  if (env == NULL)
    return 0;
  pack_strv(&sb, env);
  if (db->last_env != NULL && sb.size == db->last_env_len &&
      memcmp(sb.data, db->last_env, sb.size) == 0) {
    msgpack_sbuffer_destroy(&sb);
    return db->last_env_id;
  }
  sqlite3_reset(db->insert_env);
  sqlite3_bind_blob(db->insert_env, 1, sb.data, (int)sb.size, SQLITE_STATIC);
  rc = sqlite3_step(db->insert_env);
  sqlite3_reset(db->insert_env);
  if (rc != SQLITE_DONE) {
    msgpack_sbuffer_destroy(&sb);
    return -1;
  }
  free(db->last_env);
  db->last_env_len = sb.size;
  db->last_env = msgpack_sbuffer_release(&sb);
  db->last_env_id = sqlite3_last_insert_rowid(db->db);
  return db->last_env_id;
}

static void bind_ids(sqlite3_stmt* st, int col, const int64_t* ids, size_t n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t i;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++)
    msgpack_pack_int64(&pk, ids[i]);
  sqlite3_bind_blob(st, col, sb.data, (int)sb.size, SQLITE_TRANSIENT);
  msgpack_sbuffer_destroy(&sb);
}

/* Reads back what bind_strv or bind_ids wrote (the database is ours, but
 * it is read as carefully as any input). */
static bool unpack_array(sqlite3_stmt* st, int col, msgpack_unpacked* u) {
  const void* b = sqlite3_column_blob(st, col);
  int n = sqlite3_column_bytes(st, col);
  if (b == NULL || n <= 0)
    return false;
  return msgpack_unpack_next(u, b, (size_t)n, NULL) == MSGPACK_UNPACK_SUCCESS &&
         u->data.type == MSGPACK_OBJECT_ARRAY;
}

static char** column_strv(sqlite3_stmt* st, int col) {
  msgpack_unpacked u;
  char** v = NULL;
  uint32_t i, n;
  msgpack_unpacked_init(&u);
  if (!unpack_array(st, col, &u))
    goto out;
  n = u.data.via.array.size;
  v = calloc(n + 1, sizeof(char*));
  for (i = 0; v != NULL && i < n; i++) {
    const msgpack_object* o = &u.data.via.array.ptr[i];
    if (o->type != MSGPACK_OBJECT_STR)
      v[i] = strdup("");
    else
      v[i] = strndup(o->via.str.ptr, o->via.str.size);
  }
out:
  msgpack_unpacked_destroy(&u);
  return v;
}

static int64_t* column_ids(sqlite3_stmt* st, int col, size_t* n) {
  msgpack_unpacked u;
  int64_t* ids = NULL;
  uint32_t i;
  *n = 0;
  msgpack_unpacked_init(&u);
  if (unpack_array(st, col, &u) && u.data.via.array.size > 0) {
    ids = calloc(u.data.via.array.size, sizeof(int64_t));
    for (i = 0; ids != NULL && i < u.data.via.array.size; i++)
      if (u.data.via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        ids[(*n)++] = (int64_t)u.data.via.array.ptr[i].via.u64;
  }
  msgpack_unpacked_destroy(&u);
  return ids;
}

static void bind_text(sqlite3_stmt* st, int col, const char* s) {
  if (s)
    sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, col);
}

static char* column_text(sqlite3_stmt* st, int col) {
  const unsigned char* t = sqlite3_column_text(st, col);
  return t ? strdup((const char*)t) : NULL;
}

/* ---- jobs ------------------------------------------------------------- */

static int set_meta(qdb* db, const char* key, int64_t value) {
  sqlite3_stmt* st;
  int rc;
  if (ensure_txn(db) != 0)
    return -1;
  if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1,
                         &st, NULL) != SQLITE_OK)
    return fail(db, "cannot record the queue's state");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, value);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : fail(db, "cannot record the queue's state");
}

int qdb_insert(qdb* db, qjob* j) {
  sqlite3_stmt* st = db->insert;
  int64_t env;
  int rc;
  if (ensure_txn(db) != 0)
    return -1;
  env = env_id(db, j->env);
  if (env < 0)
    return fail(db, "cannot record the job's environment");
  sqlite3_reset(st);
  bind_text(st, 1, j->name);
  sqlite3_bind_int(st, 2, j->kind);
  bind_strv(st, 3, j->argv);
  bind_text(st, 4, j->cwd);
  if (env > 0)
    sqlite3_bind_int64(st, 5, env);
  else
    sqlite3_bind_null(st, 5);
  bind_text(st, 6, j->lib);
  bind_text(st, 7, j->fn);
  bind_text(st, 8, j->arg_json);
  sqlite3_bind_int64(st, 9, j->priority);
  sqlite3_bind_double(st, 10, j->timeout_s);
  sqlite3_bind_int64(st, 11, j->retries);
  sqlite3_bind_int64(st, 12, j->attempts);
  bind_ids(st, 13, j->after, j->nafter);
  sqlite3_bind_int(st, 14, j->state);
  sqlite3_bind_double(st, 15, j->submitted);
  bind_text(st, 16, j->group);
  sqlite3_bind_int64(st, 17, db->last_id + 1);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return fail(db, "cannot record the job");
  if (set_meta(db, "last_id", db->last_id + 1) != 0)
    return -1;
  j->id = ++db->last_id;
  return 0;
}

int64_t qdb_ids_after(qdb* db, int64_t floor) {
  int64_t skipped = floor - db->last_id;
  if (skipped <= 0)
    return 0;
  if (set_meta(db, "last_id", floor) != 0 || qdb_flush(db) != 0)
    return -1;
  db->last_id = floor;
  return skipped;
}

int qdb_delete(qdb* db, int64_t id) {
  sqlite3_stmt* st;
  int rc;
  if (ensure_txn(db) != 0)
    return -1;
  if (sqlite3_prepare_v2(db->db, "DELETE FROM jobs WHERE id = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return fail(db, "cannot remove the job");
  sqlite3_bind_int64(st, 1, id);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : fail(db, "cannot remove the job");
}

int qdb_set_group(qdb* db, const char* name, unsigned slots, bool paused) {
  sqlite3_stmt* st;
  int rc;
  if (ensure_txn(db) != 0)
    return -1;
  if (sqlite3_prepare_v2(db->db, "INSERT OR REPLACE INTO groups VALUES(?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return fail(db, "cannot record the group");
  bind_text(st, 1, name);
  sqlite3_bind_int64(st, 2, slots);
  sqlite3_bind_int(st, 3, paused);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : fail(db, "cannot record the group");
}

int qdb_load_groups(qdb* db,
                    void (*fn)(const char* name, unsigned slots, bool paused,
                               void* data),
                    void* data) {
  sqlite3_stmt* st;
  if (sqlite3_prepare_v2(db->db, "SELECT name, slots, paused FROM groups", -1,
                         &st, NULL) != SQLITE_OK)
    return fail(db, "cannot read the groups");
  while (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* name = sqlite3_column_text(st, 0);
    int64_t slots = sqlite3_column_int64(st, 1);
    if (name != NULL && slots > 0 && slots <= (1 << 16))
      fn((const char*)name, (unsigned)slots, sqlite3_column_int(st, 2) != 0,
         data);
  }
  sqlite3_finalize(st);
  return 0;
}

int qdb_update(qdb* db, const qjob* j) {
  sqlite3_stmt* st = db->update;
  int rc;
  if (ensure_txn(db) != 0)
    return -1;
  sqlite3_reset(st);
  sqlite3_bind_int(st, 1, j->state);
  sqlite3_bind_int64(st, 2, j->attempts);
  sqlite3_bind_int64(st, 3, j->pgid);
  sqlite3_bind_int64(st, 4, j->start_ticks);
  bind_text(st, 5, j->boot_id);
  sqlite3_bind_int64(st, 6, j->exit_status);
  sqlite3_bind_int64(st, 7, j->term_signal);
  bind_text(st, 8, j->result);
  bind_text(st, 9, j->error);
  sqlite3_bind_double(st, 10, j->started);
  sqlite3_bind_double(st, 11, j->ended);
  bind_text(st, 12, j->output_error);
  sqlite3_bind_int64(st, 13, j->id);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return fail(db, "cannot record the job's state");
  return 0;
}

int qdb_load(qdb* db, void (*fn)(qjob* j, void* data), void* data) {
  sqlite3_stmt* st;
  int rc;
  if (sqlite3_prepare_v2(
          db->db,
          "SELECT id, name, kind, argv, cwd,"
          " (SELECT env FROM envs WHERE envs.id = env_id), lib, fn, arg, "
          "priority,"
          " timeout, retries, attempts, after, state, pgid, start_ticks,"
          " boot_id, exit_status, term_signal, result, error, submitted,"
          " started, ended, grp, output_error FROM jobs ORDER BY id",
          -1, &st, NULL) != SQLITE_OK)
    return fail(db, "cannot read the job database");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    qjob* j = calloc(1, sizeof(*j));
    if (j == NULL)
      break;
    j->id = sqlite3_column_int64(st, 0);
    j->name = column_text(st, 1);
    j->kind = sqlite3_column_int(st, 2);
    j->argv = column_strv(st, 3);
    j->cwd = column_text(st, 4);
    j->env = column_strv(st, 5);
    j->lib = column_text(st, 6);
    j->fn = column_text(st, 7);
    j->arg_json = column_text(st, 8);
    j->priority = sqlite3_column_int64(st, 9);
    j->timeout_s = sqlite3_column_double(st, 10);
    j->retries = sqlite3_column_int64(st, 11);
    j->attempts = sqlite3_column_int64(st, 12);
    j->after = column_ids(st, 13, &j->nafter);
    j->state = sqlite3_column_int(st, 14);
    j->pgid = sqlite3_column_int64(st, 15);
    j->start_ticks = sqlite3_column_int64(st, 16);
    j->boot_id = column_text(st, 17);
    j->exit_status = sqlite3_column_int64(st, 18);
    j->term_signal = sqlite3_column_int64(st, 19);
    j->result = column_text(st, 20);
    j->error = column_text(st, 21);
    j->submitted = sqlite3_column_double(st, 22);
    j->started = sqlite3_column_double(st, 23);
    j->ended = sqlite3_column_double(st, 24);
    j->group = column_text(st, 25);
    j->output_error = column_text(st, 26);
    if (j->state < 0 || j->state >= QS_COUNT ||
        (j->kind == 0 && (j->argv == NULL || j->argv[0] == NULL))) {
      qjob_free(j); /* not ours to run */
      continue;
    }
    fn(j, data);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return fail(db, "cannot read the job database");
  return 0;
}

int qdb_set_paused(qdb* db, bool paused) {
  return set_meta(db, "paused", paused ? 1 : 0);
}

bool qdb_paused(qdb* db) {
  sqlite3_stmt* st;
  bool paused = false;
  if (sqlite3_prepare_v2(db->db, "SELECT value FROM meta WHERE key='paused'",
                         -1, &st, NULL) != SQLITE_OK)
    return false;
  if (sqlite3_step(st) == SQLITE_ROW)
    paused = sqlite3_column_int(st, 0) != 0;
  sqlite3_finalize(st);
  return paused;
}
