// A stand-in for mongod that speaks just enough of the wire protocol (OP_QUERY and OP_MSG) for the
// official driver to connect, for the tests of what needs a server's answers but not its data: a
// standalone server refused at start-up, a lost server answered 503 and recovered from, the
// commands a write sends. It keeps the documents inserted with a string _id, finds them by _id
// alone, and replaces one when every field of the update's filter equals the stored one's; every
// other find and aggregate answers an empty cursor, every other command { ok: 1 }.
// Not a MongoDB implementation; the engine's real behaviour is tested with MONGODB_URI.
import net from 'node:net';
import { BSON, Long, ObjectId } from 'mongodb';

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

export interface FakeMongod {
  port: number;
  /** Commands received, by name (the first key of each command document). */
  commands: string[];
  /** The command documents received, in order. */
  received: Record<string, unknown>[];
  /** Stops listening and drops every connection, as a crashed server would. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

function cstring(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  return [buffer.toString('utf8', offset, end), end + 1];
}

/** `replicaSet`: the set name it claims (a one-member replica set), or undefined for a standalone server. */
export async function fakeMongod(replicaSet?: string): Promise<FakeMongod> {
  const sockets = new Set<net.Socket>();
  const commands: string[] = [];
  const received: Record<string, unknown>[] = [];
  const stored = new Map<string, Record<string, unknown>>();
  let port = 0;
  let connections = 0;

  const hello = () => ({
    helloOk: true,
    ismaster: true,
    isWritablePrimary: true,
    ...(replicaSet ? { setName: replicaSet, setVersion: 1, hosts: [`127.0.0.1:${port}`], primary: `127.0.0.1:${port}`, me: `127.0.0.1:${port}`, electionId: new ObjectId('7fffffff0000000000000001') } : {}),
    maxBsonObjectSize: 16 * 1024 * 1024,
    maxMessageSizeBytes: 48_000_000,
    maxWriteBatchSize: 100_000,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId: ++connections,
    minWireVersion: 0,
    maxWireVersion: 21,
    readOnly: false,
    ok: 1,
  });

  const answer = (command: Record<string, unknown>): Record<string, unknown> => {
    const name = Object.keys(command)[0];
    commands.push(name);
    received.push(command);
    const db = typeof command.$db === 'string' ? command.$db : 'test';
    switch (name.toLowerCase()) {
      case 'hello':
      case 'ismaster':
        return hello();
      case 'find': {
        const filter = (command.filter ?? {}) as Record<string, unknown>;
        const found = typeof filter._id === 'string' ? stored.get(`${String(command.find)} ${filter._id}`) : undefined;
        return { cursor: { firstBatch: found ? [found] : [], id: Long.fromNumber(0), ns: `${db}.${String(command.find)}` }, ok: 1 };
      }
      case 'aggregate':
        return { cursor: { firstBatch: [], id: Long.fromNumber(0), ns: `${db}.${String(command[name])}` }, ok: 1 };
      case 'insert': {
        const documents = (command.documents ?? []) as Record<string, unknown>[];
        for (const doc of documents) if (typeof doc._id === 'string') stored.set(`${String(command.insert)} ${doc._id}`, doc);
        return { n: documents.length, ok: 1 };
      }
      case 'update': {
        let n = 0;
        for (const { q, u } of (command.updates ?? []) as { q: Record<string, unknown>; u: Record<string, unknown> }[]) {
          const key = `${String(command.update)} ${String(q._id)}`;
          const current = stored.get(key);
          if (!current || !Object.entries(q).every(([field, value]) => current[field] === value)) continue;
          if (!Object.keys(u).some((k) => k.startsWith('$'))) stored.set(key, u);
          n++;
        }
        return { n, nModified: n, ok: 1 };
      }
      default:
        return { n: 0, nModified: 0, ok: 1 };
    }
  };

  const reply = (socket: net.Socket, requestId: number, opCode: number, body: Buffer) => {
    const header = Buffer.alloc(16);
    header.writeInt32LE(16 + body.length, 0);
    header.writeInt32LE(0, 4);
    header.writeInt32LE(requestId, 8);
    header.writeInt32LE(opCode, 12);
    socket.write(Buffer.concat([header, body]));
  };

  const handle = (socket: net.Socket, message: Buffer) => {
    const requestId = message.readInt32LE(4);
    const opCode = message.readInt32LE(12);
    if (opCode === OP_QUERY) {
      const [, afterName] = cstring(message, 20);
      const query = BSON.deserialize(message.subarray(afterName + 8));
      const document = BSON.serialize(answer(query));
      const body = Buffer.alloc(20);
      body.writeInt32LE(0, 0); // responseFlags
      body.writeBigInt64LE(0n, 4); // cursorID
      body.writeInt32LE(0, 12); // startingFrom
      body.writeInt32LE(1, 16); // numberReturned
      reply(socket, requestId, OP_REPLY, Buffer.concat([body, document]));
    } else if (opCode === OP_MSG) {
      // flagBits, then sections; kind 0 is the command body, kind 1 document sequences (inserts).
      let offset = 20;
      let command: Record<string, unknown> = {};
      while (offset < message.length) {
        const kind = message.readUInt8(offset);
        offset += 1;
        if (kind === 0) {
          const size = message.readInt32LE(offset);
          command = { ...BSON.deserialize(message.subarray(offset, offset + size)), ...command };
          offset += size;
        } else {
          const size = message.readInt32LE(offset);
          const [identifier, start] = cstring(message, offset + 4);
          const documents: unknown[] = [];
          for (let at = start; at < offset + size; ) {
            const docSize = message.readInt32LE(at);
            documents.push(BSON.deserialize(message.subarray(at, at + docSize)));
            at += docSize;
          }
          command[identifier] = documents;
          offset += size;
        }
      }
      const flags = Buffer.alloc(5); // flagBits 0, section kind 0
      reply(socket, requestId, OP_MSG, Buffer.concat([flags, BSON.serialize(answer(command))]));
    }
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
        const length = pending.readInt32LE(0);
        handle(socket, pending.subarray(0, length));
        pending = pending.subarray(length);
      }
    });
  });

  const start = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as net.AddressInfo).port;
        server.off('error', reject);
        resolve();
      });
    });
  await start();
  return {
    get port() {
      return port;
    },
    commands,
    received,
    start,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
