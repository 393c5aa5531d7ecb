import { ServerInterceptingCall, ServerInterceptor, status } from '@grpc/grpc-js';
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
export const oneRequestMessage: ServerInterceptor = (method, call) => {
  if (method.requestStream || method.responseStream) return new ServerInterceptingCall(call);
  let messages = 0;
  let refused = false;
  const refuse = (why: string) => {
    refused = true;
    call.sendStatus(toStatus(new ServiceError(status.INVALID_ARGUMENT, 'UNDECODABLE_REQUEST', `the request to ${method.path} is not one gRPC message: ${why}`)));
  };
  return new ServerInterceptingCall(call, {
    start(next) {
      next({
        onReceiveMessage(message, pass) {
          if (refused) return;
          if (++messages > 1) refuse('a second message followed the first (is its length prefix shorter than the message?)');
          else pass(message);
        },
        onReceiveHalfClose(pass) {
          if (refused) return;
          if (messages === 0) refuse('the body ended before a whole message (is its length prefix longer than the message?)');
          else pass();
        },
      });
    },
  });
};
