/**
 * The house rules of imports (docs/architecture.md): rooms by role, every import pointing down.
 *
 *   server/  cli/                process entries, gRPC, wiring; tools     (top)
 *   client/                      the typed gRPC client (only gen/ and npm packages)
 *   admin/  ledger/  mq/         flows that span stores
 *   allocator/ registry/ store/  the stores: Redis core, etcd, MySQL
 *   kernel/                      logging, typed errors, small utilities   (floor)
 *   console/                     the web console's page: browser code, served as files, apart
 *
 * A room imports its own files and the rooms below it, never one beside or above it; bench/ and
 * test/ stand outside and may import anything. `npm test` runs this check before the suite.
 */
const rooms = ['kernel', 'allocator', 'registry', 'store', 'ledger', 'admin', 'mq', 'server', 'cli', 'client', 'console'];
const below = {
  kernel: [],
  allocator: ['kernel'],
  registry: ['kernel'],
  store: ['kernel'],
  ledger: ['kernel', 'allocator', 'registry', 'store'],
  admin: ['kernel', 'allocator', 'registry', 'store'],
  // The consumer applies warehouse messages through the operator's work (admin/), and reads them as
  // protobuf JSON (gen/: the message is defined in proto/ like the API).
  mq: ['kernel', 'allocator', 'registry', 'store', 'admin', 'gen'],
  server: ['kernel', 'allocator', 'registry', 'store', 'ledger', 'admin', 'mq', 'gen'],
  // Command-line tools, beside the server on top: they may read its configuration.
  cli: ['kernel', 'allocator', 'registry', 'store', 'ledger', 'admin', 'mq', 'server', 'gen', 'client'],
  // The client library is published on its own (client/package.json): the generated code and npm
  // packages only, so it builds without the server's rooms.
  client: ['gen'],
  // The page runs in the browser: it imports nothing of ours, and nothing imports it (the server
  // reads its files and serves them, server/console-http.ts).
  console: [],
};

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'Modules that import each other cannot be read, tested or moved on their own.',
      from: {},
      to: { circular: true },
    },
    ...rooms.map((room) => ({
      name: `${room}-imports-down`,
      severity: 'error',
      comment: `${room}/ may import only ${below[room].join(', ') || 'nothing of ours'} (docs/architecture.md)`,
      from: { path: `^${room}/` },
      to: { path: `^(${[...rooms, 'gen', 'bench', 'test'].filter((r) => r !== room && !below[room].includes(r)).join('|')})/` },
    })),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|client/dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
