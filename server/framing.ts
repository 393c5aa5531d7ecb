import { Deadline, Metadata, ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor, status } from '@grpc/grpc-js';
import { ServiceError, toStatus } from './errors';

/**
 * A unary call must carry exactly one request message. grpc-js decides that itself, after the
 * framing and before any handler (handleUnary in server.ts): a body whose 5-byte length prefix
 * claims more bytes than follow ends with no message, and one whose prefix claims fewer leaves the
 * rest to be read as a second message; both are answered UNIMPLEMENTED ("Received no request
 * message" / "Received a second request message for server streaming method"), blaming the server
 * for the caller's bytes. This interceptor counts the messages of each unary call on their way to
 * that handler and answers INVALID_ARGUMENT (UNDECODABLE_REQUEST) itself: the handler never sees
 * the half-close of such a call, so nothing runs. Streaming methods (reflection) pass untouched.
 *
 * What it cannot reach: a prefix that claims fewer bytes, where the rest is an incomplete frame,
 * delivers only the truncated message (which fails to decode, UNDECODABLE_REQUEST, unless it ends
 * exactly at a field boundary and is a valid shorter message); a rest whose own prefix claims more
 * than grpc.max_receive_message_length is RESOURCE_EXHAUSTED; a compressed flag with an encoding
 * the server lacks is UNIMPLEMENTED. Those are answered by grpc-js's framing code (the base call's
 * handleDataFrame and decompressMessage) before any interceptor runs.
 */
// grpc-js types an interceptor's result as its ServerInterceptingCall class, but the server uses
// only ServerInterceptingCallInterface (getServerInterceptingCall chains them through it).
export const oneRequestMessage: ServerInterceptor = (method, call) =>
  (method.requestStream || method.responseStream ? call : new OneRequestMessage(call, method.path)) as ServerInterceptingCall;

type Listener = Parameters<ServerInterceptingCallInterface['start']>[0];

/**
 * The interceptor's call: one object that forwards every method to the call beneath and is itself
 * the listener it starts that call with, counting messages on their way up. grpc-js's general
 * ServerInterceptingCall (a responder, a listener wrapper with its own queues, a dozen closures
 * and an extra Metadata per call) cost ~5% of the echo server's CPU per call for this one check.
 */
class OneRequestMessage implements ServerInterceptingCallInterface, Listener {
  private listener: Listener | undefined;
  private messages = 0;
  private refused = false;

  constructor(
    private readonly next: ServerInterceptingCallInterface,
    private readonly path: string,
  ) {}

  start(listener: Listener): void {
    this.listener = listener;
    this.next.start(this);
  }

  onReceiveMetadata(metadata: Metadata): void {
    this.listener!.onReceiveMetadata(metadata);
  }

  onReceiveMessage(message: unknown): void {
    if (this.refused) return;
    if (++this.messages > 1) this.refuse('a second message followed the first (is its length prefix shorter than the message?)');
    else this.listener!.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    if (this.refused) return;
    if (this.messages === 0) this.refuse('the body ended before a whole message (is its length prefix longer than the message?)');
    else this.listener!.onReceiveHalfClose();
  }

  onCancel(): void {
    this.listener!.onCancel();
  }

  private refuse(why: string): void {
    this.refused = true;
    this.next.sendStatus(toStatus(new ServiceError(status.INVALID_ARGUMENT, 'UNDECODABLE_REQUEST', `the request to ${this.path} is not one gRPC message: ${why}`)));
  }

  sendMetadata(metadata: Metadata): void {
    this.next.sendMetadata(metadata);
  }

  sendMessage(message: unknown, callback: () => void): void {
    this.next.sendMessage(message, callback);
  }

  sendStatus(s: Parameters<ServerInterceptingCallInterface['sendStatus']>[0]): void {
    this.next.sendStatus(s);
  }

  startRead(): void {
    this.next.startRead();
  }

  getPeer(): string {
    return this.next.getPeer();
  }

  getDeadline(): Deadline {
    return this.next.getDeadline();
  }

  getHost(): string {
    return this.next.getHost();
  }

  getAuthContext(): ReturnType<ServerInterceptingCallInterface['getAuthContext']> {
    return this.next.getAuthContext();
  }

  getConnectionInfo(): ReturnType<ServerInterceptingCallInterface['getConnectionInfo']> {
    return this.next.getConnectionInfo();
  }

  getMetricsRecorder(): ReturnType<ServerInterceptingCallInterface['getMetricsRecorder']> {
    return this.next.getMetricsRecorder();
  }
}
