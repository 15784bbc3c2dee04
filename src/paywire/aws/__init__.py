"""AWS Lambda entry points: composition roots for the serverless deployment.

- `paywire.aws.http.handler`: API Gateway HTTP API → Mangum → the FastAPI app;
- `paywire.aws.sqs_consumer.handler`: SQS → the shop's targets, partial batch failures;
- `paywire.aws.drainer.handler`: a schedule → due outbox rows handed to SQS;
- `paywire.aws.reconciler.handler`: a schedule → one reconcile pass and the truth queue;
- `paywire.aws.stream.handler`: DynamoDB Streams → new outbox rows handed to SQS at once.

`runtime` holds what they share (settings in, a container per execution environment), `logs`
their JSON logging, `tracing` their X-Ray subsegments (inside Lambda only), `events` and `local`
the means to run them outside Lambda. Importing a handler's module (Lambda's init) loads only
that machinery: a function's settings, adapters and web app are imported when its first
invocation builds them, and each function loads only its own (`runtime` says why).
"""
