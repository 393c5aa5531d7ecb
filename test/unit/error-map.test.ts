import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { redisFailure } from '../../allocator/redis-edge';
import { BreakerOpen, DependencyTimeout, DependencyUnavailable, Overloaded } from '../../kernel/dependency';
import { DomainError, DomainErrorKind } from '../../kernel/errors';
import { amqpFailure } from '../../mq/link';
import { etcdFailure } from '../../registry/errors';
import { ERROR_FIELD, ERROR_STATUS, toServiceError } from '../../server/domain-errors';
import { FIELD_KEY, REASON_KEY, toStatus } from '../../server/errors';
import { MysqlTimeoutError, mysqlFailure } from '../../store/mysql';
import { GRPCUnavailableError } from 'etcd3';

/** What a client sees for a thrown value: code, reason and field from the trailing metadata, the text. */
function seen(err: unknown): { code: status; reason: unknown; field: unknown; details: string; logged: boolean } {
  const failure = toStatus(toServiceError(err));
  return {
    code: failure.code,
    reason: failure.metadata.get(REASON_KEY)[0],
    field: failure.metadata.get(FIELD_KEY)[0],
    details: failure.details,
    logged: failure.internal,
  };
}

describe('the error map: every row', () => {
  // Written out, not derived from ERROR_STATUS: a changed status must change this table too.
  const domainRows: Record<DomainErrorKind, [status, string | undefined]> = {
    UNKNOWN_SKU: [status.NOT_FOUND, undefined],
    RESERVATION_NOT_FOUND: [status.NOT_FOUND, undefined],
    IDEMPOTENCY_KEY_REUSED: [status.INVALID_ARGUMENT, 'order_id'],
    UNKNOWN_ITEM: [status.INVALID_ARGUMENT, 'items'],
    ALREADY_RELEASED: [status.FAILED_PRECONDITION, undefined],
    ALREADY_EXPIRED: [status.FAILED_PRECONDITION, undefined],
    ALREADY_CONFIRMED: [status.FAILED_PRECONDITION, undefined],
    NOT_CONFIRMED: [status.FAILED_PRECONDITION, undefined],
    RESERVATION_REJECTED: [status.FAILED_PRECONDITION, undefined],
    ROLLED_BACK: [status.ABORTED, undefined],
    IN_PROGRESS: [status.ABORTED, undefined],
    INSUFFICIENT_BASE: [status.FAILED_PRECONDITION, undefined],
    PARTITION_NOT_FOUND: [status.NOT_FOUND, undefined],
    UNKNOWN_NODE: [status.INVALID_ARGUMENT, 'redis_nodes'],
    RETENTION_ENDED: [status.FAILED_PRECONDITION, undefined],
    DEADLINE_EXCEEDED: [status.DEADLINE_EXCEEDED, undefined],
    CANCELLED: [status.CANCELLED, undefined],
  };

  for (const [kind, [code, field]] of Object.entries(domainRows) as Array<[DomainErrorKind, [status, string | undefined]]>) {
    it(`domain ${kind} -> ${status[code]}`, () => {
      const answer = seen(new DomainError(kind, `about ${kind}`));
      assert.deepEqual(answer, { code, reason: kind, field, details: `about ${kind}`, logged: false });
    });
  }

  it('has a row for every domain kind and no other', () => {
    assert.deepEqual(Object.keys(ERROR_STATUS).sort(), Object.keys(domainRows).sort());
    for (const kind of Object.keys(ERROR_FIELD)) assert.ok(kind in domainRows);
  });

  const dependencyRows: Array<[string, unknown, status, string, RegExp]> = [
    ['a node down', new DependencyUnavailable('redis', '10.0.0.7:6379', 'connection is closed'), status.UNAVAILABLE, 'DEPENDENCY_UNAVAILABLE', /redis 10\.0\.0\.7:6379 is unavailable; the call is safe to retry/],
    ['a timeout', new DependencyTimeout('mysql', undefined, 'no answer'), status.UNAVAILABLE, 'DEPENDENCY_TIMEOUT', /mysql did not answer in time; .* retry with the same ids is safe/],
    ['an open breaker', new BreakerOpen('etcd', 'http://e:2379', 'open'), status.UNAVAILABLE, 'DEPENDENCY_UNAVAILABLE', /etcd http:\/\/e:2379 is unavailable \(circuit breaker open\)/],
    ['shedding', new Overloaded('too many calls in flight', 100), status.RESOURCE_EXHAUSTED, 'OVERLOADED', /too many calls in flight/],
  ];
  for (const [what, err, code, reason, details] of dependencyRows) {
    it(`dependency: ${what} -> ${status[code]} ${reason}`, () => {
      const answer = seen(err);
      assert.equal(answer.code, code);
      assert.equal(answer.reason, reason);
      assert.match(answer.details, details);
      assert.equal(answer.logged, false, 'not logged per call: the breakers and clients log outages');
    });
  }

  it('shedding carries its retry hint', () => {
    const failure = toStatus(toServiceError(new Overloaded('too many calls in flight', 120)));
    assert.equal(failure.metadata.get('retry-after-ms')[0], '120');
    assert.equal(failure.metadata.get('grpc-retry-pushback-ms')[0], '120');
  });

  it('anything else is INTERNAL, logged, its text never sent', () => {
    const answer = seen(new TypeError('cannot read x of undefined'));
    assert.deepEqual(answer, { code: status.INTERNAL, reason: 'INTERNAL', field: undefined, details: 'internal error; see the server log', logged: true });
  });
});

describe('the edges: library errors become typed failures', () => {
  const node = '127.0.0.1:6390';
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
  const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  it('redis: connection, timeout and refusals are dependency failures; script errors are not', () => {
    assert.ok(redisFailure(new Error('Connection is closed.'), node) instanceof DependencyUnavailable);
    assert.ok(redisFailure(withCode('connect ECONNREFUSED', 'ECONNREFUSED'), node) instanceof DependencyUnavailable);
    assert.ok(redisFailure(Object.assign(new Error('Reached the max retries'), { name: 'MaxRetriesPerRequestError' }), node) instanceof DependencyUnavailable);
    assert.ok(redisFailure(new Error('Command timed out'), node) instanceof DependencyTimeout);
    for (const message of ["OOM command not allowed when used memory > 'maxmemory'.", 'LOADING Redis is loading the dataset in memory', 'READONLY You can\'t write against a read only replica.', 'BUSY Redis is busy running a script']) {
      const typed = redisFailure(reply(message), node);
      assert.ok(typed instanceof DependencyUnavailable, message);
      assert.equal((typed as DependencyUnavailable).node, node);
    }
    const scriptBug = reply('ERR user_script:12: attempt to compare nil with number');
    assert.equal(redisFailure(scriptBug, node), scriptBug);
  });

  it('mysql: unreachable and timed out are dependency failures; SQL errors and deadlocks are not', () => {
    assert.ok(mysqlFailure(withCode('connect ECONNREFUSED', 'ECONNREFUSED')) instanceof DependencyUnavailable);
    assert.ok(mysqlFailure(Object.assign(new Error('server has gone away'), { errno: 2006 })) instanceof DependencyUnavailable);
    assert.ok(new MysqlTimeoutError(100) instanceof DependencyTimeout);
    const syntax = Object.assign(new Error('You have an error in your SQL syntax'), { errno: 1064, code: 'ER_PARSE_ERROR' });
    assert.equal(mysqlFailure(syntax), syntax);
    const deadlock = Object.assign(new Error('Deadlock found'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
    assert.equal(mysqlFailure(deadlock), deadlock);
  });

  it('etcd: transient gRPC failures are dependency failures', () => {
    const typed = etcdFailure(new GRPCUnavailableError('14 UNAVAILABLE: No connection established'));
    assert.ok(typed instanceof DependencyUnavailable);
    assert.equal((typed as DependencyUnavailable).dependency, 'etcd');
    const bug = new RangeError('bad');
    assert.equal(etcdFailure(bug), bug);
  });

  it('rabbitmq: a lost or refused connection is a dependency failure; a refused login is not', () => {
    assert.ok(amqpFailure(withCode('connect ECONNREFUSED 127.0.0.1:5682', 'ECONNREFUSED'), 'h:5682') instanceof DependencyUnavailable);
    assert.ok(amqpFailure(new Error('Socket closed abruptly during opening handshake'), 'h:5682') instanceof DependencyUnavailable);
    const login = new Error('Handshake terminated by server: 403 (ACCESS-REFUSED)');
    assert.equal(amqpFailure(login, 'h:5682'), login);
  });
});
