// A bare Fastify server for the read benchmark's side-by-side figure (scripts/bench/mhd.mjs): it
// answers GET /fhir/DocumentReference/:id with the bytes of the file named by argv[2] (the same
// DocumentReference Carnet serves), no token, no policy, no audit, no store. Prints its port.
import fs from 'node:fs';
import Fastify from 'fastify';

const body = fs.readFileSync(process.argv[2]);
const app = Fastify({ logger: false });
app.get('/fhir/DocumentReference/:id', (_req, reply) => {
  reply.header('content-type', 'application/fhir+json; charset=utf-8').send(body);
});
await app.listen({ port: 0, host: '127.0.0.1' });
console.log(app.server.address().port);
