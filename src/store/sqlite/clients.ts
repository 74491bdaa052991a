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
  created   TEXT NOT NULL,
  editor    TEXT,
  description TEXT,
  certified_on TEXT
);
CREATE TABLE IF NOT EXISTS client_assertion (
  client_id  TEXT NOT NULL,
  jti        TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (client_id, jti)
);
`;

const CATALOGUE_COLUMNS = ['editor', 'description', 'certified_on'];

interface ClientRow {
  id: string;
  name: string;
  kind: ClientRecord['kind'];
  jwks: string;
  scopes: string;
  certified: number;
  organization: string | null;
  created: string;
  editor: string | null;
  description: string | null;
  certified_on: string | null;
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
    ...(row.editor ? { editor: row.editor } : {}),
    ...(row.description ? { description: row.description } : {}),
    ...(row.certified_on ? { certifiedOn: row.certified_on } : {}),
    created: row.created,
  };
}

export class SqliteClients implements ClientRegistry {
  constructor(private readonly db: Database.Database) {
    db.exec(CLIENTS_DDL);
    // A registry created before the catalogue showed what users see gains those columns.
    const columns = new Set(db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('client')").all().map((c) => c.name));
    for (const column of CATALOGUE_COLUMNS) if (!columns.has(column)) db.exec(`ALTER TABLE client ADD COLUMN ${column} TEXT`);
  }

  async register(client: ClientRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO client (id, name, kind, jwks, scopes, certified, organization, created, editor, description, certified_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(
        client.id,
        client.name,
        client.kind,
        JSON.stringify(client.jwks),
        client.scopes,
        client.certified ? 1 : 0,
        client.organizationId ?? null,
        client.created,
        client.editor ?? null,
        client.description ?? null,
        client.certifiedOn ?? null,
      );
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
