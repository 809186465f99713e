// A grpc-js xDS-enabled server (@grpc/grpc-js-xds's XdsServer, pinned in package.json) for the
// xDS end-to-end tests: the same protocol as ../ccore_server.py, so that the Go side
// (access_test.go) drives both alike. The test starts it with GRPC_XDS_BOOTSTRAP set (a bootstrap
// with server_listener_resource_name_template and a file_watcher certificate provider), NODE_PATH
// pointing at the node_modules that hack/interop-deps.sh installed, and two arguments, the name
// it answers as and the address it listens on ("ip:port"). It serves with xDS server credentials
// (insecure as their fallback), so that the operator's Listener decides its TLS and its RBAC. It
// prints {"version": "..."} once it has asked for its Listener, logs its serving status changes
// to stderr, and serves until its standard input ends.
//
// It answers grpc.testing.TestService/UnaryCall as test/grpcxds's backends do: a
// grpc.testing.SimpleResponse with its name in server_id, its address in hostname and the
// caller's SPIFFE ID (the URI SAN of the client certificate it verified) in username, encoded
// here by hand (three string fields), so that no protobuf code is needed.
'use strict';

const readline = require('readline');
const grpc = require('@grpc/grpc-js');
const grpcXds = require('@grpc/grpc-js-xds');

const METHOD = '/grpc.testing.TestService/UnaryCall';

// stringField is a protobuf length-delimited field (wire type 2) holding value, UTF-8.
function stringField(number, value) {
  const data = Buffer.from(value, 'utf8');
  const head = [number << 3 | 2];
  let n = data.length;
  while (n >= 0x80) {
    head.push(n & 0x7f | 0x80);
    n >>>= 7;
  }
  head.push(n);
  return Buffer.concat([Buffer.from(head), data]);
}

// peerIdentity is the first URI SAN of the client certificate, '' without one.
function peerIdentity(call) {
  const cert = call.getAuthContext().sslPeerCertificate;
  const sans = (cert && cert.subjectaltname) || '';
  const uri = sans.split(', ').find((s) => s.startsWith('URI:'));
  return uri ? uri.slice('URI:'.length) : '';
}

async function main() {
  // As in client.js: a bootstrap the package cannot read is said at once.
  require('@grpc/grpc-js-xds/build/src/xds-bootstrap').loadBootstrapInfo();
  grpcXds.register(); // the HTTP filters (router, RBAC) and the rest of the xDS plugins
  const [name, address] = process.argv.slice(2);
  const server = new grpcXds.XdsServer();
  server.register(METHOD, (call, callback) => {
    // SimpleResponse: username = 2, server_id = 4, hostname = 6.
    callback(null, Buffer.concat([stringField(2, peerIdentity(call)), stringField(4, name), stringField(6, address)]));
  }, (b) => b, (b) => b, 'unary');
  server.bindAsync(address, new grpcXds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (err) => {
    if (err) console.error(`bind: ${err}`);
  });
  server.addServingStateListener(address, (s) => console.error(`serving status: ${grpc.status[s.code]}: ${s.details}`));
  const version = (p) => require(p + '/package.json').version;
  process.stdout.write(JSON.stringify({
    version: `grpc-js ${version('@grpc/grpc-js')}, grpc-js-xds ${version('@grpc/grpc-js-xds')}`,
  }) + '\n');
  for await (const _ of readline.createInterface({ input: process.stdin })) { /* until stdin ends */ }
  server.forceShutdown();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
