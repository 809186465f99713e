// A grpc-js xDS client (@grpc/grpc-js + @grpc/grpc-js-xds, pinned in package.json) for the xDS
// end-to-end tests: the same protocol as ../ccore_client.py, so that the Go side (interop_test.go)
// drives both alike. The test starts it with GRPC_XDS_BOOTSTRAP set, NODE_PATH pointing at the
// node_modules that hack/interop-deps.sh installed, and the xds:/// target as its last argument,
// and talks to it over stdin/stdout, one JSON object a line, so that one channel (and its xDS
// client) lives through the whole test:
//
//   in:  {"calls": 50, "metadata": {"x-canary": "yes"}}
//   out: {"replies": ["<base64 of a grpc.testing.SimpleResponse>", ...],
//         "errors": ["PERMISSION_DENIED: <details>", ...]}
//
// With --xds-credentials before the target, the channel has grpc-js-xds's XdsChannelCredentials
// (insecure as their fallback): the Cluster's UpstreamTlsContext decides its TLS, certificates
// from the bootstrap's certificate providers. Without it, the channel is insecure and ignores the
// Clusters' TLS.
//
// It calls grpc.testing.TestService/UnaryCall with an empty SimpleRequest and hands the raw
// replies back: the Go side decodes them, so no protobuf code is needed here.
'use strict';

const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const grpcXds = require('@grpc/grpc-js-xds');

const METHOD = '/grpc.testing.TestService/UnaryCall';
const identity = (b) => b;

function call(client, metadata) {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata || {})) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(METHOD, identity, identity, Buffer.alloc(0), md,
      { deadline: Date.now() + 5000 }, (err, reply) => resolve(err ? { err } : { reply }));
  });
}

async function main() {
  // The resolver reports a bootstrap it cannot read as "Cannot read properties of null" on every
  // call; reading it here first says what is wrong with it, and ends the client.
  require('@grpc/grpc-js-xds/build/src/xds-bootstrap').loadBootstrapInfo();
  grpcXds.register();
  const args = process.argv.slice(2);
  const insecure = grpc.credentials.createInsecure();
  const creds = args.slice(0, -1).includes('--xds-credentials') ? new grpcXds.XdsChannelCredentials(insecure) : insecure;
  const client = new grpc.Client(args[args.length - 1], creds);
  const version = (p) => require(p + '/package.json').version;
  process.stdout.write(JSON.stringify({
    version: `grpc-js ${version('@grpc/grpc-js')}, grpc-js-xds ${version('@grpc/grpc-js-xds')}`,
  }) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const req = JSON.parse(line);
    const replies = [];
    const errors = [];
    for (let i = 0; i < req.calls; i++) {
      const r = await call(client, req.metadata);
      if (r.err) errors.push(`${grpc.status[r.err.code]}: ${r.err.details}`);
      else replies.push(r.reply.toString('base64'));
    }
    process.stdout.write(JSON.stringify({ replies, errors }) + '\n');
  }
  client.close();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
