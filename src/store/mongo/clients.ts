// store/mongo/clients: the client registry (app catalogue) and the replay guard of client
// assertions, in the `clients` and `client_assertions` collections. A jti is recorded by an
// insert on its unique _id, so two processes cannot both accept the same assertion.

import { MongoServerError, type Collection, type Db } from 'mongodb';
import type { ClientRecord, ClientRegistry } from '../port.js';
import { guarded } from './errors.js';

type ClientDoc = Omit<ClientRecord, 'id'> & { _id: string };

interface AssertionDoc {
  _id: string;
  /** A date, so that a TTL index removes it once expired. */
  expires: Date;
}

export class MongoClients implements ClientRegistry {
  private readonly clients: Collection<ClientDoc>;
  private readonly assertions: Collection<AssertionDoc>;

  constructor(db: Db) {
    this.clients = db.collection<ClientDoc>('clients');
    this.assertions = db.collection<AssertionDoc>('client_assertions');
  }

  register(client: ClientRecord): Promise<void> {
    const { id, ...rest } = client;
    return guarded(async () => {
      await this.clients.insertOne({ _id: id, ...rest });
    });
  }

  get(id: string): Promise<ClientRecord | undefined> {
    return guarded(async () => {
      const doc = await this.clients.findOne({ _id: id });
      return doc ? toRecord(doc) : undefined;
    });
  }

  list(): Promise<ClientRecord[]> {
    return guarded(async () => (await this.clients.find().sort({ name: 1, _id: 1 }).toArray()).map(toRecord));
  }

  consumeAssertion(clientId: string, jti: string, expiresAt: number): Promise<boolean> {
    const _id = `${clientId} ${jti}`;
    return guarded(async () => {
      // The TTL monitor runs once a minute: an expired record is removed here, as the embedded engine does.
      await this.assertions.deleteOne({ _id, expires: { $lt: new Date() } });
      try {
        await this.assertions.insertOne({ _id, expires: new Date(expiresAt) });
        return true;
      } catch (error) {
        if (error instanceof MongoServerError && error.code === 11000) return false;
        throw error;
      }
    });
  }
}

function toRecord(doc: ClientDoc): ClientRecord {
  const { _id, ...rest } = doc;
  return { id: _id, ...rest };
}
