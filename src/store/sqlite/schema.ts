// store/sqlite/schema: the embedded engine's tables, created idempotently at open.
// Every version of every resource is kept (resource_version); resource_current points at the
// newest; idx_token holds the search index entries of current, non-deleted resources.

export const SCHEMA_VERSION = 1;

export const DDL = `
CREATE TABLE IF NOT EXISTS resource_version (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  type         TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  last_updated TEXT    NOT NULL,
  deleted      INTEGER NOT NULL,
  content      TEXT,
  UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS resource_version_type_seq ON resource_version (type, seq);

CREATE TABLE IF NOT EXISTS resource_current (
  type         TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  last_updated TEXT    NOT NULL,
  deleted      INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  PRIMARY KEY (type, id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idx_token (
  type   TEXT NOT NULL,
  id     TEXT NOT NULL,
  param  TEXT NOT NULL,
  system TEXT,
  code   TEXT
);
CREATE INDEX IF NOT EXISTS idx_token_lookup ON idx_token (type, param, code, system);
CREATE INDEX IF NOT EXISTS idx_token_owner ON idx_token (type, id);
`;
