/**
 * The failure converter used with the payload codec: a failure's message and stack trace travel as an encoded
 * payload (Temporal's `encodeCommonAttributes`), so the codec encrypts them with the rest. The server keeps
 * "Encoded failure" as the message; the client, the worker and the UI (through `ampsync codec-server`) read the
 * real one. Without the codec, failures stay plain: the UI shows them as they are.
 *
 * The client and the worker load it by path (`ENCODED_FAILURES_PATH` as `dataConverter.failureConverterPath`), which
 * is also how it gets into the workflow bundle: a worker with a prebuilt bundle passes the same path to
 * bundleWorkflowCode.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
