import { startInventory } from '../helpers/inventory';
import { freePort } from '../helpers/redis-node';
import { ServerProcess, spawnServerBeside } from '../helpers/server-process';
import { FAULT_ENV, failuresOnly, runScenario, stockSkus } from './scenario';

/**
 * A server process SIGKILLed under load and started again on the same port: the calls it had in
 * flight are lost with it, and the load retries them with the same order ids. The process serves;
 * this test process holds the same stores (its ledger writer, Reconcile and the checks).
 */
describe('faults: a server process', function () {
  it('SIGKILLed and started again', async () => {
    const inv = await startInventory('fserver', FAULT_ENV);
    const port = await freePort();
    const env = { ...FAULT_ENV, INVENTORY_PORT: String(port), LEDGER_WRITER: 'off' };
    let server: ServerProcess | undefined = await spawnServerBeside(inv.config, env);
    try {
      const skus = ['fs-a', 'fs-b'];
      await stockSkus(inv, skus);
      await runScenario({
        name: 'a server process SIGKILLed, started again on its port after 2 s',
        inv,
        address: `127.0.0.1:${port}`,
        skus,
        faultMs: 2000,
        async inject() {
          const exited = new Promise((resolve) => server!.child.once('exit', resolve));
          server!.child.kill('SIGKILL');
          await exited;
          server = undefined;
        },
        async heal() {
          server = await spawnServerBeside(inv.config, env);
        },
        // The dead process's calls fail with the connection; a retry that meets its attempt still in
        // flight waits for that attempt's give-up time (RESERVE_TIMEOUT_MS), so it may see its deadline.
        checks: { 'failures only UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED/ROLLED_BACK': failuresOnly(/^(UNAVAILABLE|DEADLINE_EXCEEDED|ABORTED\/ROLLED_BACK)/) },
      });
    } finally {
      await server?.stop();
      await inv.close();
    }
  });
});
