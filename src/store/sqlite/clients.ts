// store/sqlite/clients: the client registry (app catalogue) and the replay guard of client
// assertions, in the embedded database. Another process (the client CLI) may write while the
// server runs: SQLite's WAL serialises them.

import type Database from 'better-sqlite3';
import type { ClientRecord, ClientRegistry } from '../port.js';

export const CLIENTS_DDL = `
CREATE TABLE IF NOT EXISTS client (
  id        TEXT PRIMARY KEY,
  name      TEXT NOT NULL,
  kind      TEXT NOT NULL,
  jwks      TEXT NOT NULL,
  scopes    TEXT NOT NULL,
  certified INTEGER NOT NULL,
  organization TEXT,
  created   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS client_assertion (
  client_id  TEXT NOT NULL,
  jti        TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (client_id, jti)
);
`;

interface ClientRow {
  id: string;
  name: string;
  kind: ClientRecord['kind'];
  jwks: string;
  scopes: string;
  certified: number;
  organization: string | null;
  created: string;
}

function toRecord(row: ClientRow): ClientRecord {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    jwks: JSON.parse(row.jwks) as ClientRecord['jwks'],
    scopes: row.scopes,
    certified: row.certified === 1,
    ...(row.organization ? { organizationId: row.organization } : {}),
    created: row.created,
  };
}

export class SqliteClients implements ClientRegistry {
  constructor(private readonly db: Database.Database) {
    db.exec(CLIENTS_DDL);
  }

  async register(client: ClientRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO client (id, name, kind, jwks, scopes, certified, organization, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(client.id, client.name, client.kind, JSON.stringify(client.jwks), client.scopes, client.certified ? 1 : 0, client.organizationId ?? null, client.created);
  }

  async get(id: string): Promise<ClientRecord | undefined> {
    const row = this.db.prepare<[string], ClientRow>('SELECT * FROM client WHERE id = ?').get(id);
    return row ? toRecord(row) : undefined;
  }

  async list(): Promise<ClientRecord[]> {
    return this.db.prepare<[], ClientRow>('SELECT * FROM client ORDER BY name, id').all().map(toRecord);
  }

  async consumeAssertion(clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    const now = Date.now();
    const consume = this.db.transaction(() => {
      this.db.prepare('DELETE FROM client_assertion WHERE expires_at < ?').run(now);
      const result = this.db.prepare('INSERT OR IGNORE INTO client_assertion (client_id, jti, expires_at) VALUES (?, ?, ?)').run(clientId, jti, expiresAt);
      return result.changes === 1;
    });
    return consume.immediate();
  }
}
